"""Settings shared by every service, read from the environment in one place.

Nothing here reads the environment at import time: call ``S3Settings.from_env()`` /
``NatsSettings.from_env()`` in a service's entry point and pass the result in.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field

DEFAULT_BUCKET_IN = "mpr-media-in"
DEFAULT_BUCKET_OUT = "mpr-media-out"


def _env(env: Mapping[str, str] | None) -> Mapping[str, str]:
    return os.environ if env is None else env


@dataclass(frozen=True, slots=True)
class S3Settings:
    """The seed's storage contract: only ``endpoint_url`` differs between MinIO and AWS."""

    endpoint_url: str | None = None
    bucket_in: str = DEFAULT_BUCKET_IN
    bucket_out: str = DEFAULT_BUCKET_OUT
    region: str = "us-east-1"
    access_key_id: str | None = None
    secret_access_key: str | None = None
    presign_ttl: int = 3600
    # Public base for presigned links handed to browsers (e.g. nginx in front of MinIO).
    public_endpoint_url: str | None = None

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> S3Settings:
        e = _env(env)
        return cls(
            endpoint_url=e.get("S3_ENDPOINT_URL") or None,
            bucket_in=e.get("S3_BUCKET_IN", DEFAULT_BUCKET_IN),
            bucket_out=e.get("S3_BUCKET_OUT", DEFAULT_BUCKET_OUT),
            region=e.get("AWS_REGION", e.get("AWS_DEFAULT_REGION", "us-east-1")),
            access_key_id=e.get("AWS_ACCESS_KEY_ID") or None,
            secret_access_key=e.get("AWS_SECRET_ACCESS_KEY") or None,
            presign_ttl=int(e.get("S3_PRESIGN_TTL", "3600")),
            public_endpoint_url=e.get("S3_PUBLIC_ENDPOINT_URL") or None,
        )


@dataclass(frozen=True, slots=True)
class NatsSettings:
    url: str = "nats://127.0.0.1:4222"
    token: str | None = None
    # Replicas for streams: 1 on the embedded default, 3 on a JetStream cluster.
    stream_replicas: int = 1

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> NatsSettings:
        e = _env(env)
        return cls(
            url=e.get("NATS_URL", "nats://127.0.0.1:4222"),
            token=e.get("NATS_TOKEN") or None,
            stream_replicas=int(e.get("NATS_STREAM_REPLICAS", "1")),
        )

    def connect_options(self, name: str) -> dict[str, object]:
        opts: dict[str, object] = {
            "servers": [s.strip() for s in self.url.split(",") if s.strip()],
            "name": name,
            "max_reconnect_attempts": -1,
            "reconnect_time_wait": 0.5,
            "connect_timeout": 5,
        }
        if self.token:
            opts["token"] = self.token
        return opts


@dataclass(frozen=True, slots=True)
class ServiceSettings:
    """What every service reads: logging, the metrics/health port, S3 and NATS. Each service's
    settings extend it with their own fields and build it in ``from_env`` via :meth:`common_from_env`."""

    metrics_port: int = 0  # /metrics and /health/* (0 = off; the API serves them on its own port)
    log_level: str = "INFO"
    log_format: str = "json"
    s3: S3Settings = field(default_factory=S3Settings)
    nats: NatsSettings = field(default_factory=NatsSettings)

    @staticmethod
    def common_from_env(env: Mapping[str, str] | None = None) -> dict[str, object]:
        e = _env(env)
        return {
            "metrics_port": int(e.get("METRICS_PORT", "0")),
            "log_level": e.get("LOG_LEVEL", "INFO"),
            "log_format": e.get("LOG_FORMAT", "json"),
            "s3": S3Settings.from_env(e),
            "nats": NatsSettings.from_env(e),
        }
