from __future__ import annotations

from dataclasses import dataclass

from mpr_common.settings import ServiceSettings, env


@dataclass(frozen=True, slots=True)
class ApiSettings(ServiceSettings):
    host: str = env("API_HOST", default="127.0.0.1")
    port: int = env("API_PORT", default=8000)
    # Bearer tokens accepted by /api and /graphql. Empty = authentication off (never in production).
    tokens: frozenset[str] = env("API_TOKENS", default=frozenset())
    # /media/in|out redirects without a token, as the seed's public-read buckets
    public_media: bool = env("API_PUBLIC_MEDIA", default=True)
    request_timeout: float = env("API_REQUEST_TIMEOUT", default=10.0)  # seconds to wait for the catalog
    scan_timeout: float = env("API_SCAN_TIMEOUT", default=120.0)  # … for a scanner's next page
    # Signs per-job callback tokens (Lambda jobs). Unset: a random one per process (one API replica).
    callback_secret: str | None = env("API_CALLBACK_SECRET", default=None)
    callback_ttl: float = env("API_CALLBACK_TTL", default=6 * 3600.0 + 600)  # a job's timeout and some
    # Signs folder links to manifests and their media (/media/s/...). Unset: a random one per process
    # (links die when the API restarts, and another replica refuses them): set it for several replicas.
    media_secret: str | None = env("API_MEDIA_SECRET", default=None)
    media_ttl: float = env("API_MEDIA_TTL", default=6 * 3600.0)  # a long film, paused a while
    # Stream the media a signed link names through the API instead of redirecting to a presigned S3 URL:
    # for players that cannot reach S3_PUBLIC_ENDPOINT_URL (or a bucket without CORS for a web player).
    media_proxy: bool = env("API_MEDIA_PROXY", default=False)
    # The API's address as clients know it, for absolute links (output_url). Unset: the request's own
    # scheme and Host. Set it behind a proxy that rewrites Host or terminates TLS.
    public_url: str | None = env("API_PUBLIC_URL", default=None)
