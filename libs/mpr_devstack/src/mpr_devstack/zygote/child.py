"""What a forked child does before it becomes the service: the state a fresh ``python -m module``
would have (its own stdio, environment, working directory, signal handlers, process group, random
seeds), then the module as ``__main__``, then the exit an interpreter makes (threads joined, atexit
handlers run, streams flushed)."""

from __future__ import annotations

import atexit
import ctypes
import gc
import io
import os
import random
import runpy
import signal
import socket
import sys
import threading
import traceback
from collections.abc import Callable, Iterable
from typing import Any, NoReturn

Handlers = dict[int, Callable[..., Any] | int | None]

PR_SET_NAME = 15


def become(
    request: dict[str, Any],
    stdio: list[int],
    inherited: Iterable[socket.socket | int],
    handlers: Handlers,
    randoms: Iterable[random.Random],
    launcher_cwd: str,
) -> NoReturn:
    """Never returns: the child ends with ``os._exit`` whatever happens (it must not go back into the
    launcher's loop). ``inherited``: the launcher's sockets and descriptors, closed here."""
    code = 1
    try:
        _leave_launcher(request, stdio, inherited)
        _reset_process(handlers, randoms)
        code = _start(request, launcher_cwd)
    except BaseException:
        try:
            traceback.print_exc()
        except BaseException:
            pass
    finally:
        os._exit(code)


def _leave_launcher(
    request: dict[str, Any], stdio: list[int], inherited: Iterable[socket.socket | int]
) -> None:
    """Closes what belongs to the launcher; the request's descriptors become fds 0-2."""
    for owned in inherited:
        if isinstance(owned, socket.socket):
            owned.close()  # through its object, which would otherwise close that number again
        else:
            _close(owned)
    if request.get("process_group", True):
        os.setpgid(0, 0)
    for target, fd in enumerate(stdio):
        if fd != target:
            os.dup2(fd, target)
    for fd in set(stdio) - {0, 1, 2}:
        _close(fd)


def _reset_process(handlers: Handlers, randoms: Iterable[random.Random]) -> None:
    """The collector, signal handlers and random seeds of a fresh interpreter."""
    gc.enable()
    signal.set_wakeup_fd(-1)
    for sig, handler in handlers.items():
        if handler is not None and signal.getsignal(sig) != handler:
            signal.signal(sig, handler)
    for generator in randoms:
        generator.seed()


def _start(request: dict[str, Any], launcher_cwd: str) -> int:
    """The request's directory, environment, stdio and argv, then the module as ``__main__``."""
    os.chdir(request["cwd"])
    env: dict[str, str] = request["env"]
    os.environ.clear()
    os.environ.update(env)
    _fresh_stdio(unbuffered=bool(env.get("PYTHONUNBUFFERED")))
    module: str = request["module"]
    _name(module)
    if sys.path and sys.path[0] == launcher_cwd:  # ``-m`` puts the working directory first
        sys.path[0] = request["cwd"]
    sys.argv = [module, *request.get("args", [])]
    return _run(module)


def _run(module: str) -> int:
    interrupted = False
    try:
        runpy.run_module(module, run_name="__main__", alter_sys=True)
        code = 0
    except SystemExit as exc:
        code = _exit_code(exc.code)
    except KeyboardInterrupt:
        sys.excepthook(*sys.exc_info())
        code, interrupted = 1, True
    except BaseException:
        sys.excepthook(*sys.exc_info())
        code = 1
    _finish()
    if interrupted:  # as the interpreter does: die of the SIGINT, so the parent sees -2
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        os.kill(os.getpid(), signal.SIGINT)
    return code


def _exit_code(code: object) -> int:
    if code is None:
        return 0
    if isinstance(code, int):
        return code
    print(code, file=sys.stderr)
    return 1


def _finish() -> None:
    """What ``Py_FinalizeEx`` does that a child would miss with ``os._exit``."""
    shutdown = getattr(threading, "_shutdown", None)  # joins the non-daemon threads
    if shutdown is not None:
        try:
            shutdown()
        except BaseException:
            traceback.print_exc()
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except Exception:
            pass


def _fresh_stdio(unbuffered: bool) -> None:
    """New stdio objects on fds 0-2, buffered as the interpreter would for this environment (the
    launcher's were made for its own)."""
    for name, fd, write in (("stdin", 0, False), ("stdout", 1, True), ("stderr", 2, True)):
        stream = _stream(fd, getattr(sys, f"__{name}__"), write=write, unbuffered=unbuffered and write)
        setattr(sys, name, stream)
        setattr(sys, f"__{name}__", stream)


def _stream(fd: int, like: Any, *, write: bool, unbuffered: bool) -> io.TextIOWrapper:
    raw = io.FileIO(fd, "wb" if write else "rb", closefd=False)
    buffer: Any = raw if unbuffered else (io.BufferedWriter(raw) if write else io.BufferedReader(raw))
    return io.TextIOWrapper(
        buffer,
        encoding=getattr(like, "encoding", None) or "utf-8",
        errors=getattr(like, "errors", None) or ("backslashreplace" if fd == 2 else "strict"),
        line_buffering=write and not unbuffered and (fd == 2 or raw.isatty()),
        write_through=unbuffered,
    )


def _name(module: str) -> None:
    """``ps -o comm`` and top show the service, not the launcher's name (best effort)."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_NAME, ctypes.c_char_p(module.encode()[:15]), 0, 0, 0)
    except (OSError, AttributeError):
        pass


def _close(fd: int) -> None:
    try:
        os.close(fd)
    except OSError:
        pass
