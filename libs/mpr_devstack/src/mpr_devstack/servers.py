"""Start nats-server and moto's S3 server as child processes on loopback and wait until they answer."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from mpr_common.identities import render_authorization


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_until(check, timeout: float, what: str, proc: subprocess.Popen | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"{what} exited with {proc.returncode} while starting")
        try:
            if check():
                return
        except OSError:
            pass
        time.sleep(0.05)
    raise TimeoutError(f"{what} did not come up within {timeout:.0f}s")


def _bin(name: str) -> str:
    here = Path(sys.executable).parent / name
    if here.exists():
        return str(here)
    found = shutil.which(name)
    if not found:
        raise FileNotFoundError(f"{name} not found: install the project (uv sync)")
    return found


@dataclass
class Proc:
    name: str
    popen: subprocess.Popen
    log_path: Path | None = None

    def alive(self) -> bool:
        return self.popen.poll() is None

    def signal(self, sig: int) -> None:
        if self.alive():
            self.popen.send_signal(sig)

    def stop(self, timeout: float = 10.0) -> int | None:
        if self.alive():
            self.popen.send_signal(signal.SIGTERM)
            try:
                self.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait()
        return self.popen.returncode


@dataclass
class NatsServer:
    store_dir: Path
    port: int = field(default_factory=free_port)
    monitor_port: int = field(default_factory=free_port)
    proc: Proc | None = None
    log_path: Path | None = None
    # identity -> password; None: no authorization (anonymous clients welcome)
    passwords: dict[str, str] | None = None

    @property
    def address(self) -> str:
        """The server's URL without credentials (what services get beside their own identity)."""
        return f"nats://127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        """A URL carrying the setup (admin) identity, for tools and tests."""
        return self.url_as("setup") if self.passwords else self.address

    def url_as(self, identity: str) -> str:
        assert self.passwords is not None
        return f"nats://{identity}:{self.passwords[identity]}@127.0.0.1:{self.port}"

    def start(self) -> NatsServer:
        self.store_dir.mkdir(parents=True, exist_ok=True)
        conf = self.store_dir.parent / f"{self.store_dir.name}.conf"
        text = (
            f'listen: "127.0.0.1:{self.port}"\nhttp: "127.0.0.1:{self.monitor_port}"\n'
            f'server_name: "mpr-dev"\njetstream {{ store_dir: {json.dumps(str(self.store_dir))} }}\n'
        )
        if self.passwords is not None:
            text += render_authorization(self.passwords)
        conf.write_text(text)
        conf.chmod(0o600)  # it holds the passwords
        args = [_bin("nats-server"), "-c", str(conf)]
        out = open(self.log_path, "ab") if self.log_path else subprocess.DEVNULL  # noqa: SIM115
        self.proc = Proc(
            "nats-server",
            subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT, process_group=0),
            self.log_path,
        )
        wait_until(self._healthy, 20, "nats-server", self.proc.popen)
        return self

    def _healthy(self) -> bool:
        with urllib.request.urlopen(
            f"http://127.0.0.1:{self.monitor_port}/healthz?js-enabled-only=true", timeout=1
        ) as r:
            return r.status == 200

    def stop(self) -> None:
        if self.proc:
            self.proc.stop()

    def kill(self) -> None:
        if self.proc and self.proc.alive():
            self.proc.popen.kill()
            self.proc.popen.wait()


@dataclass
class MotoServer:
    port: int = field(default_factory=free_port)
    proc: Proc | None = None
    log_path: Path | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> MotoServer:
        args = [_bin("moto_server"), "-H", "127.0.0.1", "-p", str(self.port)]
        out = open(self.log_path, "ab") if self.log_path else subprocess.DEVNULL  # noqa: SIM115
        env = {**os.environ, "MOTO_S3_CUSTOM_ENDPOINTS": ""}
        self.proc = Proc(
            "moto",
            subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT, env=env, process_group=0),
            self.log_path,
        )
        wait_until(self._up, 30, "moto server", self.proc.popen)
        return self

    def _up(self) -> bool:
        with urllib.request.urlopen(f"{self.url}/moto-api/", timeout=1) as r:
            return r.status == 200

    def stop(self) -> None:
        if self.proc:
            self.proc.stop()
