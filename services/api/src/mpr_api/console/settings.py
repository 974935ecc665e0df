"""What the console reads: how uploads from it go to S3 (its session cookies: ``http/settings.py``)."""

from __future__ import annotations

from dataclasses import dataclass

from mpr_common.settings import env

from ..http.settings import HttpSettings


@dataclass(frozen=True)
class ConsoleSettings(HttpSettings):
    # Uploads from the console go straight to S3_BUCKET_IN through presigned URLs: one PUT up to a part's
    # size, multipart beyond (S3: parts of 5 MiB at least, 10,000 parts at most).
    upload_part_bytes: int = env("API_UPLOAD_PART_BYTES", default=16 * 1024 * 1024)
    upload_max_bytes: int = env("API_UPLOAD_MAX_BYTES", default=100 * 1024**3)
    upload_url_ttl: int = env("API_UPLOAD_URL_TTL", default=3600)  # seconds a presigned part URL lives
