"""Start nats-server and moto's S3 server as child processes on loopback and wait until they answer."""

from __future__ import annotations

import http.client
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

from . import zygote

# A child process: a subprocess, or a service the launcher forked (mpr_devstack.zygote), which
# behaves as one.
Process = subprocess.Popen | zygote.ZygoteProcess

# ``MPR_PORT_RANGE`` ("20000-21999"): take ports from that band, outside the kernel's ephemeral range,
# where no outgoing connection can take a port between the moment it is chosen and the moment a child
# process binds it; several test processes each get a band of their own. Unset: the kernel's choice.
_next_port: dict[str, int] = {}


def free_port() -> int:
    band = os.environ.get("MPR_PORT_RANGE", "")
    # Only the process the band was given to walks it: a child that inherited it (mpr-dev started by a
    # test) takes the kernel's choice, in the ephemeral range, which never meets the band.
    if band and os.environ.get("MPR_PORT_RANGE_PID") in (None, str(os.getpid())):
        low, high = (int(x) for x in band.split("-", 1))
        span = high - low + 1
        start = _next_port.setdefault(band, low + (os.getpid() * 7919) % span)
        for step in range(span):
            port = low + (start - low + step) % span
            with socket.socket() as sock:
                try:
                    sock.bind(("127.0.0.1", port))
                except OSError:
                    continue
            _next_port[band] = low + (port - low + 1) % span
            return port
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_until(check, timeout: float, what: str, proc: Process | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"{what} exited with {proc.returncode} while starting")
        try:
            if check():
                return
        except (OSError, http.client.HTTPException):
            # Not up yet: refused, reset, or (on a busy machine, before the server bound its port)
            # another program that briefly held the port answering something that is not HTTP.
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
    popen: Process
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
    name: str = "mpr-dev"
    cluster_port: int | None = None  # set (with routes): a member of a JetStream cluster
    routes: list[int] = field(default_factory=list)
    tls: tuple[Path, Path] | None = None  # (certificate, key): clients must speak TLS

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

    def start(self, wait: bool = True) -> NatsServer:
        self.store_dir.mkdir(parents=True, exist_ok=True)
        conf = self.store_dir.parent / f"{self.store_dir.name}.conf"
        text = (
            f'listen: "127.0.0.1:{self.port}"\nhttp: "127.0.0.1:{self.monitor_port}"\n'
            f"server_name: {json.dumps(self.name)}\n"
            f"jetstream {{ store_dir: {json.dumps(str(self.store_dir))} }}\n"
        )
        if self.cluster_port is not None:
            routes = ", ".join(f'"nats://127.0.0.1:{p}"' for p in self.routes)
            text += (
                f'cluster {{ name: "mpr", listen: "127.0.0.1:{self.cluster_port}", routes: [{routes}] }}\n'
            )
        if self.tls is not None:
            cert, key = (json.dumps(str(p)) for p in self.tls)
            text += f"tls {{ cert_file: {cert}, key_file: {key} }}\n"
        if self.passwords is not None:
            text += render_authorization(self.passwords)
        conf.write_text(text)
        conf.chmod(0o600)  # it holds the passwords
        args = [_bin("nats-server"), "-c", str(conf)]
        out = open(self.log_path, "ab") if self.log_path else subprocess.DEVNULL  # noqa: SIM115
        self.proc = Proc(
            self.name,
            subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT, process_group=0),
            self.log_path,
        )
        if not isinstance(out, int):
            out.close()  # the child has its own copy
        if wait:
            self.wait_healthy()
        return self

    def wait_healthy(self, timeout: float = 30) -> None:
        assert self.proc is not None
        wait_until(self._healthy, timeout, self.name, self.proc.popen)

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
class NatsCluster:
    """Three (or more) nats-servers forming one JetStream cluster on loopback: what k8s runs, so
    tests can kill a stream's leader. Offers NatsServer's interface; URLs list every node."""

    workdir: Path
    size: int = 3
    passwords: dict[str, str] | None = None
    nodes: list[NatsServer] = field(default_factory=list)

    def __post_init__(self) -> None:
        cluster_ports = [free_port() for _ in range(self.size)]
        self.nodes = [
            NatsServer(
                self.workdir / f"jetstream-{i}",
                log_path=self.workdir / "logs" / f"nats-{i}.log",
                passwords=self.passwords,
                name=f"nats-{i}",
                cluster_port=cluster_ports[i],
                routes=[p for j, p in enumerate(cluster_ports) if j != i],
            )
            for i in range(self.size)
        ]

    @property
    def address(self) -> str:
        return ",".join(n.address for n in self.nodes)

    @property
    def url(self) -> str:
        """The setup identity's URL of the first live node (nats-py takes one URL per string)."""
        return next(n.url for n in self.nodes if n.proc and n.proc.alive())

    def url_as(self, identity: str) -> str:
        return next(n.url_as(identity) for n in self.nodes if n.proc and n.proc.alive())

    def start(self) -> NatsCluster:
        for n in self.nodes:
            n.start(wait=False)
        for n in self.nodes:
            n.wait_healthy(60)
        # Streams are placed by the meta leader on peers it knows to be current: until then a
        # replicated stream is refused ("no suitable peers for placement").
        wait_until(self._formed, 60, "the JetStream cluster's meta leader and its peers")
        return self

    def _formed(self) -> bool:
        for n in self.nodes:
            with urllib.request.urlopen(f"http://127.0.0.1:{n.monitor_port}/jsz", timeout=1) as r:
                meta = json.load(r).get("meta_cluster") or {}
            if meta.get("leader") == n.name:
                peers = meta.get("replicas") or []
                return len(peers) == self.size - 1 and all(
                    p.get("current") and not p.get("offline") for p in peers
                )
        return False

    def node(self, name: str) -> NatsServer:
        return next(n for n in self.nodes if n.name == name)

    def stop(self) -> None:
        for n in self.nodes:
            n.stop()

    def kill(self) -> None:
        for n in self.nodes:
            n.kill()


# moto's server with range reads that cost the range (and, given a data dir, objects kept on disk)
S3_SERVER = "mpr_devstack.s3_server"


@dataclass
class MotoServer:
    """moto's server, run by our wrapper of it (``mpr_devstack.s3_server``): range reads cost the range;
    with ``data_dir`` it keeps the S3 objects there, so that a restart (or a kill -9) loses none."""

    port: int = field(default_factory=free_port)
    proc: Proc | None = None
    log_path: Path | None = None
    data_dir: Path | None = None
    # forked by this process's launcher, moto already imported (mpr_devstack.zygote)
    preload: bool = field(default_factory=zygote.preload_requested)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, wait: bool = True) -> MotoServer:
        args = [sys.executable, "-m", S3_SERVER, "--host", "127.0.0.1", "--port", str(self.port)]
        if self.data_dir is not None:
            args += ["--data-dir", str(self.data_dir)]
        out = open(self.log_path, "ab") if self.log_path else subprocess.DEVNULL  # noqa: SIM115
        env = {**os.environ, "MOTO_S3_CUSTOM_ENDPOINTS": ""}
        popen: Process
        if self.preload and self.data_dir is None:
            # Unset, as the launcher imported moto: its S3 routes were built then, and to moto unset
            # and empty are the same (no custom endpoints)
            env.pop("MOTO_S3_CUSTOM_ENDPOINTS")
            popen = zygote.spawn(S3_SERVER, args[3:], env, out, preload=True)
        else:
            popen = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT, env=env, process_group=0)
        self.proc = Proc("s3", popen, self.log_path)
        if not isinstance(out, int):
            out.close()  # the child has its own copy
        if wait:
            self.wait_up()
        return self

    def wait_up(self, timeout: float = 60) -> None:
        assert self.proc is not None
        wait_until(self._up, timeout, "s3 server", self.proc.popen)

    def _up(self) -> bool:
        with urllib.request.urlopen(f"{self.url}/moto-api/", timeout=1) as r:
            return r.status == 200

    def stop(self) -> None:
        if self.proc:
            self.proc.stop()
