from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field

from mpr_common.settings import NatsSettings, S3Settings


@dataclass(frozen=True, slots=True)
class ScannerSettings:
    interval: float = 0.0  # seconds between scheduled scans of S3_BUCKET_IN; 0 = on request only
    publish_concurrency: int = 256
    metrics_port: int = 0  # /metrics and /health/* (0 = off)
    log_level: str = "INFO"
    log_format: str = "json"
    s3: S3Settings = field(default_factory=S3Settings)
    nats: NatsSettings = field(default_factory=NatsSettings)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> ScannerSettings:
        e = os.environ if env is None else env
        return cls(
            interval=float(e.get("SCANNER_INTERVAL", "0")),
            publish_concurrency=int(e.get("SCANNER_PUBLISH_CONCURRENCY", "256")),
            metrics_port=int(e.get("METRICS_PORT", "0")),
            log_level=e.get("LOG_LEVEL", "INFO"),
            log_format=e.get("LOG_FORMAT", "json"),
            s3=S3Settings.from_env(e),
            nats=NatsSettings.from_env(e),
        )
