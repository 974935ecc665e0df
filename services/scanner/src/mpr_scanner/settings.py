from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

from mpr_common.settings import ServiceSettings


@dataclass(frozen=True, slots=True)
class ScannerSettings(ServiceSettings):
    interval: float = 0.0  # seconds between scheduled scans of S3_BUCKET_IN; 0 = on request only
    publish_concurrency: int = 256

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> ScannerSettings:
        e = os.environ if env is None else env
        return cls(
            **cls.common_from_env(e),
            interval=float(e.get("SCANNER_INTERVAL", "0")),
            publish_concurrency=int(e.get("SCANNER_PUBLISH_CONCURRENCY", "256")),
        )
