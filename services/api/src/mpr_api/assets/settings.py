"""What the assets domain reads: how long a scan may wait, and the signed links of /media/s."""

from __future__ import annotations

from dataclasses import dataclass

from mpr_common.settings import env

from ..http.settings import HttpSettings


@dataclass(frozen=True)
class AssetSettings(HttpSettings):
    scan_timeout: float = env("API_SCAN_TIMEOUT", default=120.0)  # … for a scanner's next page
    # Signs folder links to manifests and their media (/media/s/...). Unset: a random one per process
    # (links die when the API restarts, and another replica refuses them): set it for several replicas.
    media_secret: str | None = env("API_MEDIA_SECRET", default=None)
    media_ttl: float = env("API_MEDIA_TTL", default=6 * 3600.0)  # a long film, paused a while
    # Stream the media a signed link names through the API instead of redirecting to a presigned S3 URL:
    # for players that cannot reach S3_PUBLIC_ENDPOINT_URL (or a bucket without CORS for a web player).
    media_proxy: bool = env("API_MEDIA_PROXY", default=False)
