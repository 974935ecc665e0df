"""What webhooks read (docs/webhooks.md): which addresses they may reach, how attempts are paced, and the
key that seals their secrets."""

from __future__ import annotations

from dataclasses import dataclass

from mpr_common.settings import env

from ..http.settings import HttpSettings


@dataclass(frozen=True)
class WebhookSettings(HttpSettings):
    # Networks webhooks may reach although they are loopback, private, link-local, … (CIDRs or addresses,
    # comma-separated; e.g. 127.0.0.1 for a receiver on this machine in development). Empty: public only.
    webhook_allow_networks: frozenset[str] = env("WEBHOOK_ALLOW_NETWORKS", default=frozenset())
    webhook_allow_http: bool = env("WEBHOOK_ALLOW_HTTP", default=False)  # http:// URLs (development)
    webhook_timeout: float = env("WEBHOOK_TIMEOUT", default=10.0)  # one attempt, start to end (≤ 30)
    webhook_max_attempts: int = env("WEBHOOK_MAX_ATTEMPTS", default=12)  # then dead-lettered
    webhook_retry_base: float = env("WEBHOOK_RETRY_BASE", default=30.0)  # first retry after ~this; doubles
    webhook_retry_max: float = env("WEBHOOK_RETRY_MAX", default=6 * 3600.0)  # longest wait between attempts
    webhook_concurrency: int = env("WEBHOOK_CONCURRENCY", default=32)  # attempts at once per API replica
    webhook_per_subscription: int = env("WEBHOOK_PER_SUBSCRIPTION", default=4)  # … to one subscription
    webhook_secret_grace: float = env("WEBHOOK_SECRET_GRACE", default=24 * 3600.0)  # old secret still signs
    # Seals webhook secrets in their KV bucket (any string; the same on every replica). Unset: derived
    # from the API's NATS password. Changing it leaves stored secrets unreadable until rotated.
    webhook_key: str | None = env("API_WEBHOOK_KEY", default=None)
