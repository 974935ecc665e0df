"""Settings, declared once: each field names its environment variable(s) and has its one default.

Nothing here reads the environment at import time: call ``XSettings.from_env()`` in a service's
entry point and pass the result in. Values are converted by the field's type (``str``, ``int``,
``float``, ``bool``, ``frozenset[str]`` as a comma-separated list, optional ones empty = unset)."""

from __future__ import annotations

import dataclasses
import os
import socket
import ssl
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

from .identities import inbox_prefix

DEFAULT_BUCKET_IN = "mpr-media-in"
DEFAULT_BUCKET_OUT = "mpr-media-out"
_TRUE = ("1", "true", "yes", "on")

S = TypeVar("S")


def env(*names: str, default: Any = dataclasses.MISSING, factory: Any = dataclasses.MISSING) -> Any:
    """A settings field read from the first of ``names`` that is set."""
    if factory is not dataclasses.MISSING:
        return field(default_factory=factory, metadata={"env": names})
    return field(default=default, metadata={"env": names})


def _convert(raw: str, hint: Any) -> Any:
    args = [a for a in typing.get_args(hint) if a is not type(None)]
    if typing.get_origin(hint) in (typing.Union, getattr(__import__("types"), "UnionType", None)):
        return _convert(raw, args[0]) if raw.strip() else None
    if hint is bool:
        return raw.strip().lower() in _TRUE
    if typing.get_origin(hint) is frozenset:
        return frozenset(p.strip() for p in raw.split(",") if p.strip())
    return hint(raw)


class EnvSettings:
    """Mixin: ``from_env()`` builds any frozen dataclass of :func:`env` fields and nested settings."""

    @classmethod
    def from_env(cls: type[S], environ: Mapping[str, str] | None = None) -> S:
        e = os.environ if environ is None else environ
        hints = typing.get_type_hints(cls)
        kwargs: dict[str, Any] = {}
        for f in dataclasses.fields(cls):  # type: ignore[arg-type]
            hint = hints[f.name]
            if isinstance(hint, type) and issubclass(hint, EnvSettings):
                kwargs[f.name] = hint.from_env(e)
                continue
            raw = next((e[n] for n in f.metadata.get("env", ()) if n in e), None)
            if raw is not None:
                kwargs[f.name] = _convert(raw, hint)
        return cls(**kwargs)


@dataclass(frozen=True, slots=True)
class S3Settings(EnvSettings):
    """The seed's storage contract: only ``endpoint_url`` differs between MinIO and AWS."""

    endpoint_url: str | None = env("S3_ENDPOINT_URL", default=None)
    bucket_in: str = env("S3_BUCKET_IN", default=DEFAULT_BUCKET_IN)
    bucket_out: str = env("S3_BUCKET_OUT", default=DEFAULT_BUCKET_OUT)
    region: str = env("AWS_REGION", "AWS_DEFAULT_REGION", default="us-east-1")
    access_key_id: str | None = env("AWS_ACCESS_KEY_ID", default=None)
    secret_access_key: str | None = env("AWS_SECRET_ACCESS_KEY", default=None)
    presign_ttl: int = env("S3_PRESIGN_TTL", default=3600)
    # Public base for presigned links handed to browsers (e.g. nginx in front of MinIO).
    public_endpoint_url: str | None = env("S3_PUBLIC_ENDPOINT_URL", default=None)
    # Further buckets a job may name (comma-separated); S3_BUCKET_IN / S3_BUCKET_OUT always may.
    source_buckets: frozenset[str] = env("S3_SOURCE_BUCKETS", default=frozenset())
    output_buckets: frozenset[str] = env("S3_OUTPUT_BUCKETS", default=frozenset())


@dataclass(frozen=True, slots=True)
class NatsSettings(EnvSettings):
    url: str = env("NATS_URL", default="nats://127.0.0.1:4222")  # comma-separated for a cluster
    # This service's identity on the bus (see mpr_common.identities); unset: anonymous, which an
    # MPR nats-server refuses.
    user: str | None = env("NATS_USER", default=None)
    password: str | None = env("NATS_PASSWORD", default=None)
    token: str | None = env("NATS_TOKEN", default=None)
    # The CA that signed the servers' TLS certificate: set, connections are TLS and verified.
    ca_file: str | None = env("NATS_CA_FILE", default=None)
    # Replicas for streams: 1 on the embedded default, 3 on a JetStream cluster.
    stream_replicas: int = env("NATS_STREAM_REPLICAS", default=1)

    def connect_options(self, name: str) -> dict[str, object]:
        opts: dict[str, object] = {
            "servers": [s.strip() for s in self.url.split(",") if s.strip()],
            "name": name,
            "max_reconnect_attempts": -1,
            "reconnect_time_wait": 0.5,
            "connect_timeout": 5,
        }
        if self.user:
            opts["user"] = self.user
            opts["password"] = self.password or ""
            opts["inbox_prefix"] = self.inbox_prefix()
        if self.token:
            opts["token"] = self.token
        if self.ssl_context() is not None:
            opts["tls"] = self.ssl_context()
        return opts

    def inbox_prefix(self) -> str | None:
        """Replies come to this identity's own inboxes, which only it may read; None: nats-py's."""
        return inbox_prefix(self.user) if self.user else None

    def ssl_context(self) -> ssl.SSLContext | None:
        if not self.ca_file:
            return None
        return ssl.create_default_context(cafile=self.ca_file)


@dataclass(frozen=True, slots=True)
class JobQueueSettings(EnvSettings):
    """The transcoders' consumer, as its owner (``mpr-setup``) creates it; transcoders read it back
    from the server rather than from their own environment."""

    # seconds without an in-progress ack before JetStream redelivers
    ack_wait: float = env("TRANSCODER_ACK_WAIT", default=30.0)
    # deliveries before a job is failed and dead-lettered
    max_deliver: int = env("TRANSCODER_MAX_DELIVER", default=5)
    # the jobs stream's size: when full it refuses new jobs (503) instead of dropping accepted ones
    max_bytes: int = env("MPR_JOBS_MAX_BYTES", default=8 * 1024**3)


@dataclass(frozen=True, slots=True)
class ServiceSettings(EnvSettings):
    """What every service reads: logging, the metrics/health port, S3 and NATS; each service's
    settings extend it with fields of their own."""

    # /metrics and /health/* on an internal port, the API's too (0 = off: no metrics endpoint)
    metrics_port: int = env("METRICS_PORT", default=0)
    metrics_host: str = env("METRICS_HOST", default="0.0.0.0")  # noqa: S104 - k8s probes reach the pod IP
    log_level: str = env("LOG_LEVEL", default="INFO")
    log_format: str = env("LOG_FORMAT", default="json")
    s3: S3Settings = field(default_factory=S3Settings)
    nats: NatsSettings = field(default_factory=NatsSettings)
    instance: str = env("MPR_INSTANCE", "HOSTNAME", factory=socket.gethostname)
