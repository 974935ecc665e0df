"""The whole system on one machine: the same code paths as production, only endpoints differ."""

from __future__ import annotations

import asyncio
import functools
import json
import os
import secrets
import signal
import subprocess
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from mpr_common.content_keys import KEY_SECRET_ENV
from mpr_common.identities import generate_passwords
from mpr_common.settings import (
    DEFAULT_BUCKET_IN,
    DEFAULT_BUCKET_OUT,
    JobQueueSettings,
    NatsSettings,
    S3Settings,
)
from mpr_common.storage import ensure_buckets, get_s3_client
from mpr_common.streams import run_setup

from . import zygote
from .s3_store import ObjectStore
from .servers import MotoServer, NatsCluster, NatsServer, Proc, free_port, wait_until
from .supervisor import Supervisor

DEV_ACCESS_KEY = "minioadmin"  # the seed's local credentials; moto accepts any
DEV_SECRET_KEY = "minioadmin"
DEV_API_TOKEN = "mpr-dev-token"  # documented default for local development only
# Seconds the services get to answer: a few on an idle machine, minutes on two cores shared by many
# test processes (a wait ends as soon as they answer, so only a real failure waits this long).
START_TIMEOUT = 240


@dataclass
class Stack:
    workdir: Path
    nats_port: int | None = None
    s3_port: int | None = None
    api_port: int | None = None
    transcoders: int = 1
    bucket_in: str = DEFAULT_BUCKET_IN
    bucket_out: str = DEFAULT_BUCKET_OUT
    extra_env: dict[str, str] = field(default_factory=dict)
    quiet: bool = True
    nats_auth: bool = True  # one NATS identity per service (mpr_common.identities); False: anonymous
    nats_nodes: int = 1  # > 1: a JetStream cluster of that many servers (streams get NATS_STREAM_REPLICAS)
    callback_secret: str = field(default_factory=lambda: secrets.token_hex(32))
    # S3 objects kept in workdir/s3 (mpr-dev: a restart finds every object the catalog knows);
    # False: moto's own server, in memory (tests and benchmarks that start from nothing)
    persist_s3: bool = False
    # Services (and moto's server) forked by a launcher that imported them once, instead of a new
    # interpreter each (mpr_devstack.zygote); MPR_PRELOAD=1 turns it on (the tests do)
    preload: bool = field(default_factory=zygote.preload_requested)
    nats: NatsServer | NatsCluster | None = None
    moto: MotoServer | None = None
    services: dict[str, Proc] = field(default_factory=dict)
    metrics_ports: dict[str, int] = field(default_factory=dict)
    service_specs: dict[str, tuple[str, dict[str, str] | None]] = field(default_factory=dict)

    # --- endpoints -------------------------------------------------------------------------
    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.api_port}"

    def env(self) -> dict[str, str]:
        assert self.nats and self.moto
        env = {
            **os.environ,
            "NATS_URL": self.nats.address,
            "S3_ENDPOINT_URL": self.moto.url,
            "S3_BUCKET_IN": self.bucket_in,
            "S3_BUCKET_OUT": self.bucket_out,
            "AWS_ACCESS_KEY_ID": DEV_ACCESS_KEY,
            "AWS_SECRET_ACCESS_KEY": DEV_SECRET_KEY,
            "AWS_REGION": "us-east-1",
            "DATABASE_URL": f"sqlite+aiosqlite:///{self.workdir / 'catalog.db'}",
            "API_HOST": "127.0.0.1",
            "API_PORT": str(self.api_port),
            "API_TOKENS": DEV_API_TOKEN,
            # webhooks to a receiver on this machine (production refuses private addresses and http)
            "WEBHOOK_ALLOW_NETWORKS": "127.0.0.1/32,::1/128",
            "WEBHOOK_ALLOW_HTTP": "true",
            "API_CALLBACK_SECRET": self.callback_secret,
            # the API's and the transcoders' (encrypted packages' keys are wrapped with it)
            KEY_SECRET_ENV: self.key_secret(),
            "TRANSCODER_WORKDIR": str(self.workdir / "transcoder"),
            "LOG_FORMAT": "json",
            "METRICS_HOST": "127.0.0.1",  # ops ports on loopback only
            "PYTHONUNBUFFERED": "1",
        }
        env.update(self.extra_env)
        return env

    def s3_settings(self) -> S3Settings:
        return S3Settings.from_env(self.env())

    def s3_client(self):
        return get_s3_client(self.s3_settings())

    @property
    def s3_dir(self) -> Path:
        return self.workdir / "s3"

    def kept(self) -> str:
        """One line on what this work dir keeps from an earlier run (read before start)."""
        catalog = (self.workdir / "catalog.db").exists()
        if not self.persist_s3:
            return "S3 objects are kept in memory only: a restart starts with empty buckets"
        if not self.s3_dir.exists():
            if catalog:
                return (
                    f"{self.workdir} has a catalog but no S3 objects from its last run (made before "
                    "objects were kept on disk): its assets and outputs are gone; delete "
                    f"{self.workdir} for a fresh start"
                )
            return f"fresh start in {self.workdir} (S3 objects, catalog and JetStream will be kept there)"
        s = ObjectStore(self.s3_dir).summary()
        size = f"{s.size / 1e6:.1f} MB" if s.size >= 100_000 else f"{s.size:,} bytes"
        return (
            f"kept from the last run in {self.workdir}: {s.objects} S3 objects ({size}) in "
            f"{s.buckets} buckets, the catalog and JetStream"
        )

    # --- lifecycle -------------------------------------------------------------------------
    def start(self) -> Stack:
        if self.preload:
            zygote.warm_up()  # its imports run while nats-server and the S3 server start
        self.workdir.mkdir(parents=True, exist_ok=True)
        (self.workdir / "logs").mkdir(exist_ok=True)
        self.api_port = self.api_port or free_port()
        passwords = self.nats_passwords() if self.nats_auth else None
        if self.nats_nodes > 1:
            self.nats = NatsCluster(self.workdir, self.nats_nodes, passwords).start()
        else:
            self.nats = NatsServer(
                self.workdir / "jetstream",
                port=self.nats_port or free_port(),
                log_path=self.workdir / "logs" / "nats-server.log",
                passwords=passwords,
            ).start()
        self.moto = MotoServer(
            port=self.s3_port or free_port(),
            log_path=self.workdir / "logs" / "s3.log",
            data_dir=self.s3_dir if self.persist_s3 else None,
            preload=self.preload,
        ).start()
        ensure_buckets(self.s3_client(), self.bucket_in, self.bucket_out)
        self.setup_jetstream()
        for name in ("catalog", "scanner"):
            self.start_service(name)
        for i in range(self.transcoders):
            self.start_service("transcoder", f"transcoder-{i + 1}")
        self.start_service("api")
        wait_until(self._api_ready, START_TIMEOUT, "api", self.services["api"].popen)
        wait_until(self._backends_ready, START_TIMEOUT, "catalog and scanner")
        return self

    def nats_passwords(self) -> dict[str, str]:
        """Generated once per work dir and kept (0600), so a publisher's credential survives restarts."""
        path = self.workdir / "nats-passwords.json"
        if path.exists():
            return json.loads(path.read_text())
        passwords = generate_passwords()
        path.write_text(json.dumps(passwords, indent=2))
        path.chmod(0o600)
        return passwords

    def key_secret(self) -> str:
        """Generated once per work dir and kept (0600): keys wrapped with it open after a restart."""
        path = self.workdir / "key-secret"
        if not path.exists():
            self.workdir.mkdir(parents=True, exist_ok=True)
            path.touch(mode=0o600)
            path.write_text(secrets.token_urlsafe(32))
        return path.read_text().strip()

    def nats_identity(self, identity: str) -> dict[str, str]:
        """The environment that makes a process connect as ``identity``."""
        assert self.nats
        if not self.nats.passwords:
            return {}
        return {"NATS_USER": identity, "NATS_PASSWORD": self.nats.passwords[identity]}

    def setup_jetstream(self) -> None:
        """What ``mpr-setup`` does in production: the one owner of streams and consumers."""
        env = {**self.env(), **self.nats_identity("setup")}
        asyncio.run(run_setup(NatsSettings.from_env(env), JobQueueSettings.from_env(env)))

    def start_service(self, module: str, name: str | None = None, env: dict[str, str] | None = None) -> Proc:
        name = name or module
        log_path = self.workdir / "logs" / f"{name}.log"
        out = None if not self.quiet else open(log_path, "ab")  # noqa: SIM115
        self.metrics_ports.setdefault(name, free_port())
        full_env = {
            **self.env(),
            **self.nats_identity(module),
            "MPR_INSTANCE": name,
            "METRICS_PORT": str(self.metrics_ports[name]),
            **(env or {}),
        }
        # In its own process group: a terminal's Ctrl-C reaches mpr-dev alone, which stops the
        # services first (SIGTERM) and the servers they drain into last.
        popen = zygote.spawn(f"mpr_{module}", [], full_env, out, self.preload)
        if out is not None:
            out.close()  # the child has its own copy
        proc = Proc(name, popen, log_path)
        self.services[name] = proc
        self.service_specs[name] = (module, env)
        return proc

    def restart_service(self, name: str) -> Proc:
        """The same service again (same name, environment, metrics port and log file)."""
        module, env = self.service_specs[name]
        return self.start_service(module, name, env)

    def supervisor(self, say) -> Supervisor:
        """Watches every process of the started stack: the servers (restarted on their ports and
        stores: JetStream and kept S3 objects survive) and each service."""
        assert self.nats and self.moto
        sup = Supervisor(say)
        nodes = self.nats.nodes if isinstance(self.nats, NatsCluster) else [self.nats]
        for node in nodes:
            name = node.name if len(nodes) > 1 else "nats-server"
            sup.watch(name, functools.partial(_proc_of, node), functools.partial(node.start, wait=False))
        sup.watch(
            "s3", functools.partial(_proc_of, self.moto), functools.partial(self.moto.start, wait=False)
        )
        for name in list(self.services):
            sup.watch(
                name,
                functools.partial(self.services.get, name),
                functools.partial(self.restart_service, name),
            )
        return sup

    def _api_ready(self) -> bool:
        with urllib.request.urlopen(f"{self.api_url}/health/ready", timeout=2) as r:
            return r.status == 200

    def _backends_ready(self) -> bool:
        """The catalog answers a query and the scanner a scan of an empty prefix, through the API."""
        for proc in self.services.values():
            if not proc.alive():
                tail = proc.log_path.read_text(errors="replace")[-3000:] if proc.log_path else ""
                raise RuntimeError(f"{proc.name} exited with {proc.popen.returncode} while starting:\n{tail}")
        headers = {"Authorization": f"Bearer {DEV_API_TOKEN}", "Content-Type": "application/json"}
        for method, path, body in (
            ("GET", "/api/jobs?limit=1", None),
            ("POST", "/api/assets/scan", b'{"prefix": "mpr-readiness-check/"}'),
        ):
            req = urllib.request.Request(self.api_url + path, data=body, method=method, headers=headers)
            try:
                with urllib.request.urlopen(req, timeout=5) as r:
                    if r.status != 200:
                        return False
            except urllib.error.HTTPError:
                return False
        return True

    def stop(self) -> None:
        for proc in self.services.values():
            proc.signal(signal.SIGTERM)
        deadline = time.monotonic() + 15
        for proc in self.services.values():
            try:
                proc.popen.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                proc.popen.kill()
                proc.popen.wait()
        if self.moto:
            self.moto.stop()
        if self.nats:
            self.nats.stop()


def _proc_of(server: NatsServer | MotoServer) -> Proc | None:
    return server.proc
