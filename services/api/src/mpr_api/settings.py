from __future__ import annotations

from dataclasses import dataclass

from mpr_common.settings import ServiceSettings, env

from .executors import EXECUTORS, stepfunctions_configured


@dataclass(frozen=True, slots=True)
class ApiSettings(ServiceSettings):
    host: str = env("API_HOST", default="127.0.0.1")
    port: int = env("API_PORT", default=8000)
    # Bearer tokens accepted by /api and /graphql. Empty = authentication off (never in production).
    tokens: frozenset[str] = env("API_TOKENS", default=frozenset())
    # /media/in|out redirects without a token, as the seed's public-read buckets
    public_media: bool = env("API_PUBLIC_MEDIA", default=True)
    # Wrong tokens, cookies and sign-ins a client may send a minute (a burst of this many, then one every
    # 60/n s); beyond, 429 with Retry-After for all it sends that needs a credential. 0: no throttle.
    auth_failures_per_minute: int = env("API_AUTH_FAILURES_PER_MINUTE", default=10)
    # Behind a reverse proxy: the header it sets to the client's address (e.g. X-Forwarded-For; its last
    # address is used). Unset: the connection's address. Set it only when every request comes through the
    # proxy, which must overwrite or append to it: a client could write anything in it otherwise.
    client_address_header: str | None = env("API_CLIENT_ADDRESS_HEADER", default=None)
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
    # --- the web console (/console) ---
    # Signs console session cookies. Unset: a key derived from API_TOKENS (every replica with the same
    # tokens agrees; changing the tokens signs everyone out). Set it to sign sessions out on its own.
    session_secret: str | None = env("API_SESSION_SECRET", default=None)
    session_ttl: float = env("API_SESSION_TTL", default=12 * 3600.0)  # a working day, then sign in again
    # Uploads from the console go straight to S3_BUCKET_IN through presigned URLs: one PUT up to a part's
    # size, multipart beyond (S3: parts of 5 MiB at least, 10,000 parts at most).
    upload_part_bytes: int = env("API_UPLOAD_PART_BYTES", default=16 * 1024 * 1024)
    upload_max_bytes: int = env("API_UPLOAD_MAX_BYTES", default=100 * 1024**3)
    upload_url_ttl: int = env("API_UPLOAD_URL_TTL", default=3600)  # seconds a presigned part URL lives
    # Who runs a job whose request names no executor (docs/executors.md): "workers" (the transcoders),
    # "stepfunctions" (an execution of the state machine below, which invokes the transcoder Lambda) or
    # "lambda" (recorded and answered with its callback token: the caller runs the Lambda handler).
    executor: str = env("API_EXECUTOR", default="workers")
    stepfunctions_state_machine_arn: str | None = env("API_STEPFUNCTIONS_STATE_MACHINE_ARN", default=None)
    stepfunctions_region: str | None = env("API_STEPFUNCTIONS_REGION", default=None)  # unset: AWS_REGION
    # Another Step Functions endpoint (tests: moto's server); unset: AWS's.
    stepfunctions_endpoint_url: str | None = env("API_STEPFUNCTIONS_ENDPOINT_URL", default=None)
    # A named AWS profile for Step Functions (e.g. a role), when AWS_ACCESS_KEY_ID is MinIO's; unset:
    # the default credential chain.
    stepfunctions_profile: str | None = env("API_STEPFUNCTIONS_PROFILE", default=None)
    # The API's address as the Lambda reaches it, for its callbacks; unset: API_PUBLIC_URL.
    callback_url: str | None = env("API_CALLBACK_URL", default=None)
    # --- webhooks (docs/webhooks.md) ---
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

    def __post_init__(self) -> None:
        if self.auth_failures_per_minute < 0:
            raise ValueError("API_AUTH_FAILURES_PER_MINUTE: 0 (no throttle) or more")
        # A deployment that names an executor it cannot use fails at start, not on every job.
        if self.executor not in EXECUTORS:
            raise ValueError(f"API_EXECUTOR={self.executor!r}: one of {', '.join(EXECUTORS)}")
        if self.executor == "stepfunctions" and not stepfunctions_configured(self):
            raise ValueError(
                "API_EXECUTOR=stepfunctions needs API_STEPFUNCTIONS_STATE_MACHINE_ARN and "
                "API_CALLBACK_URL (or API_PUBLIC_URL)"
            )
