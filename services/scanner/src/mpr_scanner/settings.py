from __future__ import annotations

from dataclasses import dataclass

from mpr_common.settings import ServiceSettings, env


@dataclass(frozen=True, slots=True)
class ScannerSettings(ServiceSettings):
    # seconds between scheduled scans of S3_BUCKET_IN; 0 = on request only
    interval: float = env("SCANNER_INTERVAL", default=0.0)
    publish_concurrency: int = env("SCANNER_PUBLISH_CONCURRENCY", default=256)
