"""The pre-forking launcher (mpr_devstack.zygote): a child it forks behaves as a process started by
``subprocess.Popen`` would (exit statuses, signals, environment, log file, process group, working dir,
timeouts, tracebacks), and a request it cannot serve safely starts a plain subprocess instead.

The children run this very file as ``python -m tests.system.test_devstack_zygote <what>`` (the block at
the end); the launcher here imports only this file and moto's server, not the services."""

from __future__ import annotations

import json
import logging
import os
import random
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from mpr_devstack.servers import Proc
from mpr_devstack.supervisor import Supervisor
from mpr_devstack.zygote import ZygoteProcess, client
from mpr_devstack.zygote.process import LOST_STATUS

pytestmark = pytest.mark.system

ME = "tests.system.test_devstack_zygote"
# Read when this file is imported: the launcher imports it once, with its own environment.
IMPORT_TIME_SETTING = os.environ.get("ZYGOTE_TEST_IMPORT_SETTING")
if os.environ.get("ZYGOTE_TEST_THREAD_AT_IMPORT"):  # an import that starts a thread (must be refused)
    threading.Thread(target=time.sleep, args=(120,), daemon=True).start()


@pytest.fixture(scope="module")
def launcher() -> Iterator[client.Launcher]:
    zygote = client.Launcher([ME, "moto.server"])
    yield zygote
    zygote.stop()


def env(**extra: str) -> dict[str, str]:
    own = {k: v for k, v in os.environ.items() if not k.startswith("ZYGOTE_TEST") and k != "PYTHONUNBUFFERED"}
    return own | extra


def spawn(zygote: client.Launcher, *args: str, log: Path | None = None, **extra: str) -> ZygoteProcess:
    if log is None:
        return zygote.spawn(ME, list(args), env(**extra), [0, 1, 2], os.getcwd())
    with open(log, "ab") as out:
        return zygote.spawn(ME, list(args), env(**extra), [0, out.fileno(), out.fileno()], os.getcwd())


def report(zygote: client.Launcher, tmp_path: Path, *args: str, **extra: str) -> dict:
    log = tmp_path / f"report-{time.monotonic_ns()}.log"
    p = spawn(zygote, "report", *args, log=log, **extra)
    assert p.wait(60) == 0, log.read_text()
    return json.loads(log.read_text().splitlines()[-1])


def wait_for_file(path: Path, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert time.monotonic() < deadline, f"{path} never appeared"
        time.sleep(0.02)


def test_exit_statuses_are_those_of_the_module(launcher):
    assert spawn(launcher, "exit", "0").wait(60) == 0
    assert spawn(launcher, "exit", "3").wait(60) == 3
    assert spawn(launcher, "return").wait(60) == 0  # the module just ends


def test_signals_end_it_with_negative_statuses_as_popen(launcher, tmp_path):
    p = spawn(launcher, "sleep")
    assert p.poll() is None and p.returncode is None
    p.kill()
    assert p.wait(60) == -signal.SIGKILL
    q = spawn(launcher, "sleep")
    q.terminate()
    assert q.wait(60) == -signal.SIGTERM  # no handler of its own: the default action, as a new process


def test_a_sigterm_handler_of_the_service_runs(launcher, tmp_path):
    ready = tmp_path / "ready"
    log = tmp_path / "term.log"
    p = spawn(launcher, "handle-term", str(ready), log=log)
    wait_for_file(ready)
    p.send_signal(signal.SIGTERM)
    assert p.wait(60) == 7
    assert "got SIGTERM" in log.read_text()


def test_a_signal_after_the_end_reaches_nobody(launcher):
    p = spawn(launcher, "exit", "0")
    assert p.wait(60) == 0
    # Reaped by the launcher: its pid may be another process's by now. Nothing is sent, nothing raised.
    p.send_signal(signal.SIGKILL)
    p.kill()
    p.terminate()
    assert p.returncode == 0 and p.poll() == 0


def test_wait_times_out_as_popen(launcher):
    p = spawn(launcher, "sleep")
    t0 = time.monotonic()
    with pytest.raises(subprocess.TimeoutExpired) as exc:
        p.wait(0.3)
    assert 0.25 < time.monotonic() - t0 < 10
    assert exc.value.timeout == 0.3 and "-m" in exc.value.cmd
    assert p.poll() is None
    p.kill()
    assert p.wait(60) == -signal.SIGKILL


def test_each_child_has_its_own_environment_and_nothing_of_the_launchers(launcher, tmp_path):
    os.environ["ZYGOTE_TEST_REQUESTER_ONLY"] = "x"  # in this process after the launcher started
    try:
        one = report(launcher, tmp_path, ZYGOTE_TEST_VALUE="one")
        two = report(launcher, tmp_path, ZYGOTE_TEST_VALUE="two")
    finally:
        del os.environ["ZYGOTE_TEST_REQUESTER_ONLY"]
    assert one["value"] == "one" and two["value"] == "two"
    assert one["requester_only"] is None and two["requester_only"] is None
    assert one["getenv"] == "one"  # the C library's environment too (what FFmpeg children get)
    assert one["pid"] != two["pid"]
    assert one["random"] != two["random"]  # reseeded in each child
    assert one["moto_random"] != two["moto_random"]  # a generator an import made, too
    assert one["threads"] == 1 and one["cwd"] == os.getcwd() and one["argv"] == ["report"]


@pytest.mark.parametrize("unbuffered", [{"PYTHONUNBUFFERED": "1"}, {}])
def test_stdout_and_stderr_go_to_the_log_file_as_a_new_interpreter_writes_them(
    launcher, tmp_path, unbuffered
):
    log = tmp_path / "service.log"
    log.write_text("before\n")
    p = spawn(launcher, "print", log=log, **unbuffered)
    assert p.wait(60) == 0
    plain = tmp_path / "plain.log"
    with open(plain, "ab") as out:
        subprocess.run(
            [sys.executable, "-m", ME, "print"], stdout=out, stderr=out, env=env(**unbuffered), check=True
        )
    assert log.read_text() == "before\n" + plain.read_text()
    if unbuffered:
        assert plain.read_text() == "to stdout\nto stderr\nto stdout again\n"
    else:  # stdout to a file is block-buffered, stderr line-buffered
        assert plain.read_text() == "to stderr\nto stdout\nto stdout again\n"


def test_no_log_file_means_the_requesters_own_stdout_and_stderr(launcher, capfd):
    assert spawn(launcher, "print", PYTHONUNBUFFERED="1").wait(60) == 0
    out, err = capfd.readouterr()
    assert "to stdout\n" in out and "to stderr\n" in err


def test_it_runs_in_its_own_process_group(launcher, tmp_path):
    got = report(launcher, tmp_path)
    assert got["pgid"] == got["pid"] != os.getpgid(0)
    ready = tmp_path / "ready"
    p = spawn(launcher, "handle-term", str(ready))
    wait_for_file(ready)
    os.killpg(p.pid, signal.SIGKILL)  # a group of its own: this process is not in it
    assert p.wait(60) == -signal.SIGKILL


def test_signal_handlers_are_a_fresh_interpreters(launcher, tmp_path):
    got = report(launcher, tmp_path)
    fresh = subprocess.run(
        [sys.executable, "-m", ME, "report"], capture_output=True, text=True, check=True, env=env()
    )
    assert got["handlers"] == json.loads(fresh.stdout.splitlines()[-1])["handlers"]


def test_a_module_that_raises_exits_1_with_its_traceback_in_the_log(launcher, tmp_path):
    log = tmp_path / "raise.log"
    p = spawn(launcher, "raise", log=log)
    assert p.wait(60) == 1
    text = log.read_text()
    assert "Traceback (most recent call last)" in text and "ValueError: the service failed" in text
    assert spawn(launcher, "exit", "a message", log=log).wait(60) == 1  # sys.exit("...") as Python
    assert log.read_text().endswith("a message\n")


def test_atexit_handlers_and_threads_finish_as_at_a_normal_exit(launcher, tmp_path):
    log = tmp_path / "atexit.log"
    assert spawn(launcher, "atexit", log=log).wait(60) == 0
    assert log.read_text() == "thread done\natexit ran\n"


def test_an_environment_an_import_read_otherwise_starts_a_plain_process(monkeypatch, caplog):
    os.environ["ZYGOTE_TEST_IMPORT_SETTING"] = "launcher"
    try:
        zygote = client.Launcher([ME])
    finally:
        del os.environ["ZYGOTE_TEST_IMPORT_SETTING"]
    monkeypatch.setattr(client, "_launcher", zygote)
    monkeypatch.setattr(client, "_owner", os.getpid())
    monkeypatch.setattr(client, "_given_up", None)
    try:
        same = client.spawn(ME, ["exit", "0"], env(ZYGOTE_TEST_IMPORT_SETTING="launcher"), None, preload=True)
        assert isinstance(same, ZygoteProcess) and same.wait(60) == 0
        with caplog.at_level(logging.WARNING, logger=client.__name__):
            other = client.spawn(
                ME, ["exit", "6"], env(ZYGOTE_TEST_IMPORT_SETTING="other"), None, preload=True
            )
        assert isinstance(other, subprocess.Popen) and other.wait(60) == 6
        assert "ZYGOTE_TEST_IMPORT_SETTING differs" in caplog.text
        # What the interpreter reads as it starts, before any import, counts the same.
        with pytest.raises(client.Refused, match="PYTHONHASHSEED"):
            zygote.spawn(
                ME,
                ["exit", "0"],
                env(ZYGOTE_TEST_IMPORT_SETTING="launcher", PYTHONHASHSEED="3"),
                [0, 1, 2],
                os.getcwd(),
            )
        # A refusal is about one request: the next one is forked again.
        again = client.spawn(
            ME, ["exit", "0"], env(ZYGOTE_TEST_IMPORT_SETTING="launcher"), None, preload=True
        )
        assert isinstance(again, ZygoteProcess) and again.wait(60) == 0
    finally:
        zygote.stop()


def test_a_launcher_whose_imports_started_a_thread_forks_nothing():
    os.environ["ZYGOTE_TEST_THREAD_AT_IMPORT"] = "1"
    try:
        zygote = client.Launcher([ME])
    finally:
        del os.environ["ZYGOTE_TEST_THREAD_AT_IMPORT"]
    try:
        with pytest.raises(client.Refused, match="started a thread"):
            zygote.spawn(ME, ["exit", "0"], env(ZYGOTE_TEST_THREAD_AT_IMPORT="1"), [0, 1, 2], os.getcwd())
    finally:
        zygote.stop()


@pytest.fixture
def own_launcher(monkeypatch) -> Iterator[client.Launcher]:
    """This process's launcher (the one ``spawn`` uses) replaced by one of the test's, and put back."""
    zygote = client.Launcher([ME])
    monkeypatch.setattr(client, "_launcher", zygote)
    monkeypatch.setattr(client, "_owner", os.getpid())
    monkeypatch.setattr(client, "_given_up", None)
    yield zygote
    zygote.stop()


def test_spawn_falls_back_to_a_plain_process_when_the_launcher_is_gone(own_launcher, tmp_path, caplog):
    p = client.spawn(ME, ["exit", "4"], env(), None, preload=True)
    assert isinstance(p, ZygoteProcess) and p.wait(60) == 4
    own_launcher.proc.kill()
    own_launcher.proc.wait()
    log = tmp_path / "fallback.log"
    with caplog.at_level(logging.WARNING, logger=client.__name__), open(log, "ab") as out:
        q = client.spawn(ME, ["report"], env(ZYGOTE_TEST_VALUE="v"), out, preload=True)
    assert isinstance(q, subprocess.Popen) and q.wait(60) == 0
    assert json.loads(log.read_text().splitlines()[-1])["value"] == "v"
    assert "the launcher is gone" in caplog.text
    # From then on without asking: no wait on a launcher that is not there.
    t0 = time.monotonic()
    r = client.spawn(ME, ["exit", "5"], env(), None, preload=True)
    assert isinstance(r, subprocess.Popen) and r.wait(60) == 5 and time.monotonic() - t0 < 30


def test_a_child_outlives_its_launcher_and_can_still_be_stopped(own_launcher, tmp_path, caplog):
    ready = tmp_path / "ready"
    p = client.spawn(ME, ["handle-term", str(ready)], env(), None, preload=True)
    assert isinstance(p, ZygoteProcess)
    wait_for_file(ready)
    own_launcher.proc.kill()
    own_launcher.proc.wait()
    with caplog.at_level(logging.WARNING):
        assert p.poll() is None  # still running, reparented
        p.kill()  # through its pidfd
        assert p.wait(60) == LOST_STATUS  # its status went with the launcher
    assert "died" in caplog.text


def test_the_supervisor_restarts_a_forked_service_that_was_killed(launcher):
    lines: list[str] = []
    current = [Proc("transcoder-1", spawn(launcher, "sleep"))]
    sup = Supervisor(lines.append, first_delay=0, max_delay=0)
    sup.watch(
        "transcoder-1",
        lambda: current[0],
        lambda: current.__setitem__(0, Proc("t", spawn(launcher, "sleep"))),
    )
    first = current[0].popen
    first.kill()
    first.wait(60)
    sup.poll()
    assert lines == ["transcoder-1 exited (signal 9); restarting in 0 s"]
    sup.poll()
    assert sup.restarts == 1 and current[0].popen is not first and current[0].alive()
    assert current[0].stop(30) == -signal.SIGTERM


# --- what the children run ----------------------------------------------------------------------
def _c_getenv(name: str) -> str | None:
    import ctypes

    libc = ctypes.CDLL(None)
    libc.getenv.restype = ctypes.c_char_p
    value = libc.getenv(name.encode())
    return value.decode() if value is not None else None


def _exit(args: list[str]) -> None:
    code = args[0]
    sys.exit(int(code) if code.lstrip("-").isdigit() else code)


def _sleep(args: list[str]) -> None:
    time.sleep(120)


def _raise(args: list[str]) -> None:
    raise ValueError("the service failed")


def _handle_term(args: list[str]) -> None:
    def on_term(*_):
        print("got SIGTERM", flush=True)
        sys.exit(7)

    signal.signal(signal.SIGTERM, on_term)
    Path(args[0]).write_text("ready")
    time.sleep(120)


def _print(args: list[str]) -> None:
    print("to stdout")
    print("to stderr", file=sys.stderr)
    print("to stdout again")


def _atexit(args: list[str]) -> None:
    import atexit

    atexit.register(lambda: print("atexit ran", flush=True))
    threading.Thread(target=lambda: (time.sleep(0.5), print("thread done", flush=True))).start()


def _report(args: list[str]) -> None:
    from moto.moto_api._internal import mock_random

    handlers = {}
    for sig in sorted(signal.valid_signals()):
        h = signal.getsignal(sig)
        handlers[int(sig)] = h if isinstance(h, int) else getattr(h, "__name__", repr(h))
    report = {
        "value": os.environ.get("ZYGOTE_TEST_VALUE"),
        "getenv": _c_getenv("ZYGOTE_TEST_VALUE"),
        "requester_only": os.environ.get("ZYGOTE_TEST_REQUESTER_ONLY"),
        "pid": os.getpid(),
        "pgid": os.getpgid(0),
        "random": random.random(),
        "moto_random": mock_random.random(),
        "threads": threading.active_count(),
        "cwd": os.getcwd(),
        "argv": sys.argv[1:],
        "handlers": handlers,
    }
    print(json.dumps(report), flush=True)


CHILDREN = {
    "exit": _exit,
    "return": lambda args: None,
    "sleep": _sleep,
    "raise": _raise,
    "handle-term": _handle_term,
    "print": _print,
    "atexit": _atexit,
    "report": _report,
}


def _child(what: str, args: list[str]) -> None:
    CHILDREN[what](args)


if __name__ == "__main__":
    _child(sys.argv[1], sys.argv[2:])
