from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field

from mpr_common.settings import NatsSettings, S3Settings


@dataclass(frozen=True, slots=True)
class ApiSettings:
    host: str = "127.0.0.1"
    port: int = 8000
    # Bearer tokens accepted by /api and /graphql. Empty = authentication off (never in production).
    tokens: frozenset[str] = frozenset()
    public_media: bool = True  # /media/in|out redirects without a token, as the seed's public-read buckets
    request_timeout: float = 10.0  # seconds to wait for the catalog / scanner
    scan_timeout: float = 120.0
    log_level: str = "INFO"
    log_format: str = "json"
    s3: S3Settings = field(default_factory=S3Settings)
    nats: NatsSettings = field(default_factory=NatsSettings)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> ApiSettings:
        e = os.environ if env is None else env
        return cls(
            host=e.get("API_HOST", "127.0.0.1"),
            port=int(e.get("API_PORT", "8000")),
            tokens=frozenset(t.strip() for t in e.get("API_TOKENS", "").split(",") if t.strip()),
            public_media=e.get("API_PUBLIC_MEDIA", "true").lower() in ("1", "true", "yes"),
            request_timeout=float(e.get("API_REQUEST_TIMEOUT", "10")),
            scan_timeout=float(e.get("API_SCAN_TIMEOUT", "120")),
            log_level=e.get("LOG_LEVEL", "INFO"),
            log_format=e.get("LOG_FORMAT", "json"),
            s3=S3Settings.from_env(e),
            nats=NatsSettings.from_env(e),
        )
