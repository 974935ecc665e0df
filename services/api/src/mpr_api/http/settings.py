"""What every part of the API reads: where it listens, who may call it, its address as clients know it,
and how long it waits for the catalog. Each domain's settings extend these; ``ApiSettings`` joins them."""

from __future__ import annotations

from dataclasses import dataclass

from mpr_common.content_keys import KEY_SECRET_ENV
from mpr_common.settings import ServiceSettings, env

from .origins import ANY_ORIGIN, parse_origins

PLAYER_ORIGINS_ENV = "API_PLAYER_ORIGINS"


@dataclass(frozen=True)
class HttpSettings(ServiceSettings):
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
    # The API's address as clients know it, for absolute links (output_url). Unset: the request's own
    # scheme and Host. Set it behind a proxy that rewrites Host or terminates TLS.
    public_url: str | None = env("API_PUBLIC_URL", default=None)
    # Wraps encrypted packages' content keys (the transcoders' MPR_KEY_SECRET: the same value); unset,
    # encryption is refused (400) and no key is served.
    key_secret: str | None = env(KEY_SECRET_ENV, default=None)
    # Web pages whose players may fetch signed media links, AES-128 keys and ClearKey licences
    # (http/player_cors.py): comma-separated origins (https://player.example.com), "*" for any, empty
    # for the API's own origin only. Any, by default: those routes take no cookie, only the token in
    # their URL, and whoever holds a link can read it without a browser anyway; CORS narrows only
    # which pages may embed a player that does. No other route ever gets a CORS header.
    player_origins: frozenset[str] = env(PLAYER_ORIGINS_ENV, default=frozenset({ANY_ORIGIN}))
    # --- console sessions (the gate checks their cookies on every path they may use) ---
    # Signs console session cookies. Unset: a key derived from API_TOKENS (every replica with the same
    # tokens agrees; changing the tokens signs everyone out). Set it to sign sessions out on its own.
    session_secret: str | None = env("API_SESSION_SECRET", default=None)
    session_ttl: float = env("API_SESSION_TTL", default=12 * 3600.0)  # a working day, then sign in again

    def __post_init__(self) -> None:
        if self.auth_failures_per_minute < 0:
            raise ValueError("API_AUTH_FAILURES_PER_MINUTE: 0 (no throttle) or more")
        # Kept as browsers write an Origin header: a request is then matched by string equality.
        object.__setattr__(self, "player_origins", parse_origins(self.player_origins, PLAYER_ORIGINS_ENV))
