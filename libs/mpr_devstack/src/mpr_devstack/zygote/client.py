"""The requester's side: the launcher process (started on first use, once per process, stopped at
exit) and ``spawn``, which asks it for a service and falls back to a plain subprocess, with a warning,
when it cannot (gone, refused, not answering)."""

from __future__ import annotations

import atexit
import logging
import os
import select
import subprocess
import sys
import tempfile
import threading
import time
from typing import IO

from . import protocol
from .process import ZygoteProcess

log = logging.getLogger(__name__)

# How long a request may wait for its child while the launcher still imports (a minute or more on
# two cores shared by several test processes); a live launcher answers well before, a dead one at once.
ANSWER_TIMEOUT = 300.0

Output = IO | int | None  # a file, subprocess.DEVNULL, or None: this process's own stdout and stderr


class LauncherGone(Exception):
    pass


class Refused(Exception):
    pass


class Launcher:
    """``python -m mpr_devstack.zygote`` in a process group of its own (a terminal's Ctrl-C is not
    for it), reading requests on one end of a socket pair; closing our end stops it."""

    def __init__(self, entries: list[str] | None = None) -> None:
        """``entries``: the modules it imports before it forks them (default: preload.ENTRIES)."""
        ours, theirs = protocol.socket_pair()
        self.output = tempfile.TemporaryFile()  # noqa: SIM115 - read when it dies, closed with it
        extra = [] if entries is None else (entries or [""])
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "mpr_devstack.zygote", str(theirs.fileno()), *extra],
            pass_fds=[theirs.fileno()],
            stdin=subprocess.DEVNULL,
            stdout=self.output,
            stderr=subprocess.STDOUT,
            process_group=0,
        )
        theirs.close()
        self.control = ours
        self.lock = threading.Lock()

    def spawn(
        self, module: str, args: list[str], env: dict[str, str], stdio: list[int], cwd: str
    ) -> ZygoteProcess:
        ours, theirs = protocol.socket_pair()
        try:
            request = {"module": module, "args": args, "env": env, "cwd": cwd, "process_group": True}
            try:
                with self.lock:
                    protocol.send(self.control, request, [theirs.fileno(), *stdio])
            except OSError as exc:
                raise LauncherGone(f"cannot reach it ({exc})") from exc
            finally:
                theirs.close()
            deadline = time.monotonic() + ANSWER_TIMEOUT
            while not select.select([ours], [], [], 1.0)[0]:
                if self.proc.poll() is not None:
                    raise LauncherGone(f"it exited with {self.proc.returncode}")
                if time.monotonic() > deadline:
                    raise LauncherGone(f"no answer within {ANSWER_TIMEOUT:.0f} s")
            message, fds = protocol.receive(ours, max_fds=1)
        except BaseException:
            ours.close()
            raise
        if message is None:
            ours.close()
            raise LauncherGone("it closed the request")
        if "refused" in message:
            ours.close()
            raise Refused(message["refused"])
        return ZygoteProcess([sys.executable, "-m", module, *args], int(message["pid"]), fds[0], ours)

    def last_words(self) -> str:
        self.output.seek(0)
        return self.output.read()[-2000:].decode(errors="replace")

    def stop(self) -> None:
        self.control.close()  # it ends at the end of its requests
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.output.close()


_lock = threading.Lock()
_launcher: Launcher | None = None
_owner = 0  # the pid that started it: a forked copy of this process must start its own
_given_up: str | None = None  # why this process no longer asks a launcher


def _forget_in_child() -> None:
    global _launcher, _lock
    _launcher, _lock = None, threading.Lock()


os.register_at_fork(after_in_child=_forget_in_child)


def launcher() -> Launcher | None:
    """This process's launcher, started on first use; None once it has given up on launchers."""
    global _launcher, _owner
    with _lock:
        if _given_up is not None:
            return None
        if _launcher is None or _owner != os.getpid():
            _launcher, _owner = Launcher(), os.getpid()
        return _launcher


def warm_up() -> None:
    """Starts the launcher now, without waiting: its imports run while the caller does other work."""
    launcher()


@atexit.register
def stop() -> None:
    global _launcher
    with _lock:
        if _launcher is not None and _owner == os.getpid():
            _launcher.stop()
        _launcher = None


def _give_up(reason: str) -> None:
    global _given_up, _launcher
    with _lock:
        _given_up = reason
        _launcher = None


def _fd(output: Output, devnull: list[int]) -> int:
    if output is None:
        return 1
    if output == subprocess.DEVNULL:
        devnull.append(os.open(os.devnull, os.O_WRONLY))
        return devnull[-1]
    return output if isinstance(output, int) else output.fileno()


def spawn(module: str, args: list[str], env: dict[str, str], output: Output, preload: bool):
    """``python -m module args`` in a process group of its own, stdout and stderr to ``output``; with
    ``preload``, forked by the launcher (a :class:`ZygoteProcess`), else (or when it cannot) a
    ``subprocess.Popen``."""
    if preload and (zygote := launcher()) is not None:
        devnull: list[int] = []
        out = _fd(output, devnull)
        err = 2 if output is None else out
        try:
            return zygote.spawn(module, args, env, [0, out, err], os.getcwd())
        except Refused as exc:
            log.warning("%s started as a plain process: the launcher refused (%s)", module, exc)
        except LauncherGone as exc:
            words = zygote.last_words()
            _give_up(str(exc))
            zygote.stop()
            log.warning(
                "the launcher is gone (%s); %s and every later process start as plain processes%s",
                exc,
                module,
                f"; its last output:\n{words}" if words else "",
            )
        finally:
            for fd in devnull:
                os.close(fd)
    return subprocess.Popen(
        [sys.executable, "-m", module, *args],
        env=env,
        stdout=output,
        stderr=subprocess.STDOUT if output is not None else None,
        # Its own process group: a terminal's Ctrl-C reaches the starting process alone, which stops
        # its children in order.
        process_group=0,
    )
