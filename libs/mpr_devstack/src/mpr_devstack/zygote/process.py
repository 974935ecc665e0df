"""A service forked by the launcher, handled as a ``subprocess.Popen``: ``pid``, ``returncode``,
``poll()``, ``wait(timeout)`` (``subprocess.TimeoutExpired``), ``send_signal``, ``terminate``,
``kill``. It is the launcher's child, so the launcher reaps it and sends its exit status on this
process's own socket; signals go through a pidfd, which cannot reach another process that got the
pid after this one was reaped."""

from __future__ import annotations

import logging
import os
import select
import signal
import socket
import subprocess
import threading
import time
import weakref

from . import protocol

log = logging.getLogger(__name__)

# An exit nobody could report: the launcher died before this process did, taking its status with it.
LOST_STATUS = 255


class ZygoteProcess:
    def __init__(self, args: list[str], pid: int, pidfd: int, answers: socket.socket) -> None:
        self.args = args
        self.pid = pid
        self.returncode: int | None = None
        # Open as long as this object lives (even once the process ended): a closed number could be
        # reused by another pidfd while a send_signal in another thread is about to use it.
        self._pidfd = pidfd
        self._answers: socket.socket | None = answers
        self._lock = threading.Lock()
        weakref.finalize(self, os.close, pidfd)

    def __repr__(self) -> str:
        return f"<ZygoteProcess: returncode: {self.returncode} args: {self.args!r}>"

    def poll(self) -> int | None:
        if self.returncode is None and self._lock.acquire(blocking=False):
            try:
                self._wait(0)
            finally:
                self._lock.release()
        return self.returncode

    def wait(self, timeout: float | None = None) -> int:
        with self._lock:
            code = self._wait(timeout)
        if code is None:
            raise subprocess.TimeoutExpired(self.args, timeout or 0)
        return code

    def send_signal(self, sig: int) -> None:
        if self.poll() is not None:
            return  # as Popen: an ended process is not signalled (its pid may be another's by now)
        try:
            signal.pidfd_send_signal(self._pidfd, sig)
        except ProcessLookupError:
            pass

    def terminate(self) -> None:
        self.send_signal(signal.SIGTERM)

    def kill(self) -> None:
        self.send_signal(signal.SIGKILL)

    def _wait(self, timeout: float | None) -> int | None:
        deadline = None if timeout is None else time.monotonic() + timeout
        while self.returncode is None:
            remaining = None if deadline is None else max(0.0, deadline - time.monotonic())
            if self._answers is not None:
                if not select.select([self._answers], [], [], remaining)[0]:
                    return None
                message, fds = protocol.receive(self._answers, max_fds=0)
                if message is not None:
                    self._ended(int(message["exit"]))
                    break
                # The launcher is gone: its orphan runs on, and only its pidfd tells when it ends.
                log.warning(
                    "the launcher of %s (pid %d) died; its exit status will be lost", self.args, self.pid
                )
                self._answers.close()
                self._answers = None
            if not select.select([self._pidfd], [], [], remaining)[0]:
                return None
            self._ended(LOST_STATUS)
        return self.returncode

    def _ended(self, code: int) -> None:
        self.returncode = code
        if self._answers is not None:
            self._answers.close()
            self._answers = None
