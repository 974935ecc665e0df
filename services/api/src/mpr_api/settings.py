from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

from mpr_common.settings import ServiceSettings


@dataclass(frozen=True, slots=True)
class ApiSettings(ServiceSettings):
    host: str = "127.0.0.1"
    port: int = 8000
    # Bearer tokens accepted by /api and /graphql. Empty = authentication off (never in production).
    tokens: frozenset[str] = frozenset()
    public_media: bool = True  # /media/in|out redirects without a token, as the seed's public-read buckets
    request_timeout: float = 10.0  # seconds to wait for the catalog / scanner
    scan_timeout: float = 120.0

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> ApiSettings:
        e = os.environ if env is None else env
        return cls(
            **cls.common_from_env(e),
            host=e.get("API_HOST", "127.0.0.1"),
            port=int(e.get("API_PORT", "8000")),
            tokens=frozenset(t.strip() for t in e.get("API_TOKENS", "").split(",") if t.strip()),
            public_media=e.get("API_PUBLIC_MEDIA", "true").lower() in ("1", "true", "yes"),
            request_timeout=float(e.get("API_REQUEST_TIMEOUT", "10")),
            scan_timeout=float(e.get("API_SCAN_TIMEOUT", "120")),
        )
