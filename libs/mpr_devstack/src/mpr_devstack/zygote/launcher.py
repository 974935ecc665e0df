"""The launcher's loop: imports the services once (``preload``), then forks a child per request and
reports each child's exit on that request's socket. Single-threaded, no event loop: a fork copies only
the thread that calls it, so a thread started before a fork would be missing (with whatever lock it
held) in every child. Ends when its requester closes the control socket (or dies)."""

from __future__ import annotations

import gc
import os
import select
import signal
import socket
import sys
import threading
from dataclasses import dataclass, field
from typing import Any

from . import child, preload, protocol


@dataclass
class _Child:
    pid: int
    answers: socket.socket


@dataclass
class _Request:
    message: dict[str, Any]
    answers: socket.socket
    stdio: list[int]


@dataclass
class Launcher:
    control: socket.socket
    handlers: child.Handlers = field(default_factory=dict)
    env_reads: preload.EnvReads = field(default_factory=preload.EnvReads)
    children: dict[int, _Child] = field(default_factory=dict)  # by pidfd
    pending: list[_Request] = field(default_factory=list)
    to_load: list[str] = field(default_factory=lambda: list(preload.ENTRIES))
    randoms: list = field(default_factory=list)
    broken: str | None = None  # set: every request is refused, with this reason
    cwd: str = field(default_factory=os.getcwd)

    def serve(self) -> None:
        while True:
            # While modules remain to import, only look at what is ready now, then import one more.
            timeout = 0 if self.to_load else None
            waiting: list[Any] = [self.control, *self.children]
            readable, _, _ = select.select(waiting, [], [], timeout)
            for fd in readable:
                if fd in self.children:
                    self._reap(fd)
            if self.control in readable and not self._receive():
                return
            if self.to_load and not readable:
                self._load(self.to_load.pop(0))
            self._start_ready()

    def _receive(self) -> bool:
        message, fds = protocol.receive(self.control)
        if message is None:
            return False
        answers = socket.socket(fileno=fds[0])
        self.pending.append(_Request(message, answers, fds[1:]))
        return True

    def _load(self, module: str) -> None:
        try:
            with self.env_reads.recording():
                preload.load(module)
        except Exception as exc:  # the child will import it itself, and fail there if it must
            print(f"launcher: preloading {module} failed: {exc!r}", file=sys.stderr, flush=True)
        self.randoms = preload.module_randoms()
        gc.freeze()  # children's collections leave the imported objects (and their pages) alone
        if threading.active_count() != 1:
            self.broken = f"importing {module} started a thread: {threading.enumerate()}"

    def _start_ready(self) -> None:
        waiting = []
        for request in self.pending:
            if request.message["module"] in self.to_load:
                waiting.append(request)
            else:
                self._start(request)
        self.pending = waiting

    def _start(self, request: _Request) -> None:
        reason = self.broken or self.env_reads.mismatch(request.message["env"])
        if reason is None and threading.active_count() != 1:
            reason = f"the launcher runs threads: {threading.enumerate()}"
        if reason is not None:
            self._refuse(request, reason)
            return
        sys.stdout.flush()
        sys.stderr.flush()
        try:
            pid = os.fork()
        except OSError as exc:  # out of processes or memory: the requester may still manage
            self._refuse(request, f"fork failed: {exc}")
            return
        if pid == 0:
            inherited: list[socket.socket | int] = [self.control, request.answers, *self.children]
            inherited += [c.answers for c in self.children.values()]
            child.become(request.message, request.stdio, inherited, self.handlers, self.randoms, self.cwd)
        for fd in request.stdio:
            os.close(fd)
        if request.message.get("process_group", True):
            try:  # also here, so that no signal to its group can come before the child set it
                os.setpgid(pid, pid)
            except OSError:
                pass
        pidfd = os.pidfd_open(pid)
        self.children[pidfd] = _Child(pid, request.answers)
        if not _send(request.answers, {"pid": pid}, [pidfd]):
            os.kill(pid, signal.SIGKILL)  # its requester gave up waiting: nobody would stop it

    def _refuse(self, request: _Request, reason: str) -> None:
        _send(request.answers, {"refused": reason})
        request.answers.close()
        for fd in request.stdio:
            os.close(fd)

    def _reap(self, pidfd: int) -> None:
        c = self.children.pop(pidfd)
        _, status = os.waitpid(c.pid, 0)
        os.close(pidfd)
        _send(c.answers, {"exit": os.waitstatus_to_exitcode(status)})
        c.answers.close()


def _send(sock: socket.socket, message: dict[str, Any], fds: list[int] | None = None) -> bool:
    try:
        protocol.send(sock, message, fds)
        return True
    except OSError:  # the requester closed its end (gave up, or died)
        return False


def main(argv: list[str]) -> None:
    # The handlers a fresh interpreter has, before any import changes one: each child gets them back.
    handlers: child.Handlers = {}
    for sig in signal.valid_signals():
        try:
            handlers[sig] = signal.getsignal(sig)
        except (OSError, ValueError):
            continue
    gc.disable()  # no collections while importing: fewer holes in the pages the children share
    launcher = Launcher(socket.socket(fileno=int(argv[0])), handlers)
    if len(argv) > 1:  # the entries to import, in this order (tests); default: preload.ENTRIES
        launcher.to_load = [m for m in argv[1:] if m]
    try:  # a child's pidfd is how the requester signals it without racing the reaping of its pid
        os.close(os.pidfd_open(os.getpid()))
    except (AttributeError, OSError) as exc:
        launcher.broken = f"no pidfd on this system ({exc})"
        launcher.to_load.clear()
    launcher.serve()
