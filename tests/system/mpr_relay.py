"""``mpr`` commands of a shell script, forked by a launcher that imported the CLI once (each command
costs 0.3-0.6 s of CPU in imports otherwise, and the README runs two dozen).

The script runs ``python -I -S mpr_relay_client.py SOCKET ARGS`` (stdlib only: no site, no workspace
imports) where it would run ``mpr ARGS``. The client hands its argv, environment, working directory and
stdin/stdout/stderr to the relay over a Unix socket; the relay has the launcher fork
``python -m mpr_cli`` (what the ``mpr`` script runs) with them, in a process of its own, and answers
its exit status, which the client exits with. A request the launcher refuses (an import of the CLI read
a variable the script set otherwise) runs the installed ``mpr`` script instead, and is noted in
``refusals``."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
from pathlib import Path
from unittest import mock

from mpr_devstack.zygote import protocol
from mpr_devstack.zygote.client import Launcher, Refused
from mpr_devstack.zygote.process import ZygoteProcess

MPR = str(Path(sys.executable).parent / "mpr")
CLIENT = Path(__file__).with_name("mpr_relay_client.py")
# The CLI, and what its upload imports (boto3) once it runs.
PRELOAD = ["mpr_cli", "mpr_common.storage"]


class MprRelay:
    def __init__(self, home: Path) -> None:
        """``home``: the scripts' HOME. botocore reads it when imported (the paths of ~/.aws), so the
        launcher starts with it: with another, it would refuse every command."""
        with mock.patch.dict(os.environ, {"HOME": str(home)}):
            self.launcher = Launcher(PRELOAD)  # its process takes the environment as it starts
        self.refusals: list[str] = []
        self.running: set[subprocess.Popen | ZygoteProcess] = set()
        self.lock = threading.Lock()
        # A short path of its own: a Unix socket's path may not exceed 107 bytes.
        self.dir = Path(tempfile.mkdtemp(prefix="mpr-relay-"))
        self.path = self.dir / "s"
        self.listener = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        self.listener.bind(str(self.path))
        self.listener.listen(16)
        threading.Thread(target=self._accept, daemon=True).start()

    def command(self) -> list[str]:
        """What runs ``mpr ARGS`` through this relay, followed by ARGS."""
        return [sys.executable, "-I", "-S", str(CLIENT), str(self.path)]

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.listener.accept()
            except OSError:  # stopped
                return
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        with conn:
            message, fds = protocol.receive(conn, max_fds=3)
            if message is None:
                return
            code = self._run(message["args"], message["env"], message["cwd"], fds)
            with contextlib.suppress(OSError):  # the client is gone (its script was stopped)
                protocol.send(conn, {"exit": code})

    def _run(self, args: list[str], env: dict[str, str], cwd: str, stdio: list[int]) -> int:
        try:
            try:
                proc: subprocess.Popen | ZygoteProcess = self.launcher.spawn("mpr_cli", args, env, stdio, cwd)
            except Refused as exc:
                self.refusals.append(str(exc))
                proc = subprocess.Popen(
                    [MPR, *args], env=env, cwd=cwd, stdin=stdio[0], stdout=stdio[1], stderr=stdio[2]
                )
        finally:
            for fd in stdio:  # the child has its own copies: a pipe it writes to ends when it exits
                os.close(fd)
        with self.lock:
            self.running.add(proc)
        try:
            return proc.wait()
        finally:
            with self.lock:
                self.running.discard(proc)

    def stop(self) -> None:
        with contextlib.suppress(OSError):
            self.listener.shutdown(socket.SHUT_RDWR)  # wakes the accept
        self.listener.close()
        with self.lock:
            left = list(self.running)
        for proc in left:  # a command its script did not wait for (the script failed or timed out)
            proc.send_signal(signal.SIGKILL)
        self.launcher.stop()
        shutil.rmtree(self.dir, ignore_errors=True)
