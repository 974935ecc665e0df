"""mpr-dev's supervisor (mpr_devstack.supervisor): a process that dies is restarted after a line on the
terminal, with exponential backoff capped while it keeps dying, and from the first delay again once it
stayed up; a restart that fails is retried. Real processes on a fake clock."""

from __future__ import annotations

import signal
import subprocess
import sys

from mpr_devstack.servers import Proc
from mpr_devstack.supervisor import Supervisor, describe_exit


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def sleeper() -> Proc:
    return Proc("svc", subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"]))


def dead(returncode_signal: int | None = None) -> Proc:
    p = subprocess.Popen([sys.executable, "-c", "import sys; sys.exit(3)"])
    p.wait()
    if returncode_signal is not None:
        p.returncode = -returncode_signal
    return Proc("svc", p)


def test_exit_descriptions():
    assert describe_exit(-9) == "signal 9"
    assert describe_exit(1) == "status 1"
    assert describe_exit(None) == "running"


def test_a_killed_process_is_restarted_after_a_line_and_its_delay():
    clock, lines = Clock(), []
    current = [sleeper()]
    starts = []

    def restart():
        starts.append(clock.now)
        current[0] = sleeper()

    sup = Supervisor(lines.append, first_delay=1, max_delay=8, stable_after=60, clock=clock)
    sup.watch("transcoder-1", lambda: current[0], restart)
    sup.poll()
    assert lines == [] and starts == []  # alive: nothing to do
    current[0].popen.send_signal(signal.SIGKILL)
    current[0].popen.wait()
    sup.poll()
    assert lines == ["transcoder-1 exited (signal 9); restarting in 1 s"]
    clock.now = 0.5
    sup.poll()
    assert starts == []  # not before its delay
    clock.now = 1.0
    sup.poll()
    assert starts == [1.0] and sup.restarts == 1
    sup.poll()
    assert current[0].alive() and len(lines) == 1  # the new one runs: nothing more to say
    current[0].popen.kill()
    current[0].popen.wait()


def test_backoff_doubles_to_the_cap_and_resets_after_a_stable_run():
    clock, lines = Clock(), []
    state = {"proc": dead(signal.SIGKILL), "stable": False}

    def restart():
        state["proc"] = sleeper() if state["stable"] else dead(signal.SIGKILL)

    sup = Supervisor(lines.append, first_delay=1, max_delay=8, stable_after=60, clock=clock)
    sup.watch("api", lambda: state["proc"], restart)
    delays = []
    for _ in range(6):
        sup.poll()  # notices the death and schedules
        delays.append(float(lines[-1].split("restarting in ")[1].split(" s")[0]))
        clock.now += delays[-1]
        sup.poll()  # restarts it (dead again at once)
        clock.now += 0.1
    assert delays == [1, 2, 4, 8, 8, 8]
    assert sup.restarts == 6
    # It comes up and stays up for longer than stable_after: the next death starts from 1 s again.
    state["stable"] = True
    sup.poll()
    clock.now += 8
    sup.poll()
    proc = state["proc"]
    assert proc.alive()
    clock.now += 61
    sup.poll()
    proc.popen.kill()
    proc.popen.wait()
    sup.poll()
    assert lines[-1] == "api exited (signal 9); restarting in 1 s"


def test_a_restart_that_fails_is_retried_with_backoff():
    clock, lines = Clock(), []
    attempts = []

    def restart():
        attempts.append(clock.now)
        if len(attempts) < 3:
            raise OSError("address already in use")

    proc = dead()
    sup = Supervisor(lines.append, first_delay=1, max_delay=30, clock=clock)
    sup.watch("s3", lambda: proc, restart)
    sup.poll()
    assert lines[-1] == "s3 exited (status 3); restarting in 1 s"
    for t in (1, 3, 7):
        clock.now = t
        sup.poll()
    assert attempts == [1, 3, 7]
    assert lines[1:] == [
        "s3 could not be restarted (address already in use); trying again in 2 s",
        "s3 could not be restarted (address already in use); trying again in 4 s",
    ]
    assert sup.restarts == 1
