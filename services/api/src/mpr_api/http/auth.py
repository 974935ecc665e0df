"""Authentication: bearer tokens (API_TOKENS; off when none are configured) and the console's session
cookie, which stands for a token in a browser.

Checked in the API's one ASGI layer (``edge.py``) rather than by a Litestar guard: the guard machinery
cost an eighth of a small request (measured on POST /api/jobs), and the layer also answers 401 before
routing.

Sessions are stateless: signing in POSTs a valid token and gets back a cookie (HttpOnly, SameSite=Strict,
Secure over https) holding ``<expires>.<sid>.<fingerprint>.<mac>``: a random session id, a keyed
fingerprint of the token used (so that removing that token from API_TOKENS ends its sessions too) and an
HMAC of them all. The cookie is accepted only for the console's pages, ``/api`` and ``/media``, never on a
websocket. A request sent with the cookie that changes anything (POST, PUT, PATCH, DELETE) must also carry
the session's CSRF token in the ``X-MPR-CSRF`` header: the console's page has it (the server writes it into
the page), another site cannot read it, and a custom header cannot be sent cross-site without a CORS
preflight, which the API never grants where the cookie is accepted (only the token-bound playback routes,
which never read it, answer CORS: ``player_cors.py``). A bearer token in the Authorization header always
wins over the cookie: a browser never sends one on its own, so such a request needs no CSRF token.

Guessing is throttled per client (:class:`AuthThrottle`): every wrong bearer token, invalid session cookie,
refused WebSocket handshake and refused console sign-in spends one of the client's
API_AUTH_FAILURES_PER_MINUTE (a bucket that refills at that rate). A client with none left gets a 429 with
Retry-After for everything that needs a credential, a valid one included (answering it would tell a
guesser which guess was right), until the bucket refills; a client that sends valid credentials spends
nothing and is never slowed. The client is the connection's address, or the last address of
API_CLIENT_ADDRESS_HEADER when the API is configured to trust a proxy's header; IPv6 clients count per /64."""

from __future__ import annotations

import base64
import hashlib
import hmac
import ipaddress
import math
import re
import secrets
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from urllib.parse import quote

from litestar.serialization import encode_json
from litestar.types import Message, Receive, Scope, Send

from mpr_common.content_keys import KEY_PATH_PREFIX, LICENSE_PATH_PREFIX

from .limits import AUTH_THROTTLE_MAX_CLIENTS
from .settings import HttpSettings

SIGNED_PREFIX = "/media/s/"  # signed media links (assets/media_links.py): the link is the credential
CONSOLE_PREFIX = "/console"
SIGN_IN_PATH = "/console/sign-in"
SIGN_OUT_PATH = "/console/sign-out"
CONSOLE_STATIC_PREFIX = "/console/static/"
# Signed media links and encrypted packages' key and licence URLs (a playback token) carry their own credential (players and ffprobe cannot send a bearer token); the
# console's sign-in page, its static files and the redirect from / to the console hold no data.
OPEN_PREFIXES = (
    "/health",
    "/schema",
    SIGNED_PREFIX,
    KEY_PATH_PREFIX,
    LICENSE_PATH_PREFIX,
    CONSOLE_STATIC_PREFIX,
)
OPEN_PATHS = frozenset({"/", SIGN_IN_PATH, SIGN_OUT_PATH})
MEDIA_PREFIX = "/media/"
CALLBACK = re.compile(r"^/api/jobs/[A-Za-z0-9_-]+/callback$")  # its own per-job token, checked by the route
# Where a session cookie stands for a token: the console's pages and what they call.
SESSION_PREFIXES = (CONSOLE_PREFIX, "/api/", MEDIA_PREFIX)

SESSION_COOKIE = "mpr_session"
# Over https the cookie gets the __Host- prefix: browsers then refuse it unless it is Secure, for the
# whole host and without a Domain, so that no sibling subdomain can plant one.
SECURE_SESSION_COOKIE = "__Host-mpr_session"
CSRF_HEADER = "X-MPR-CSRF"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
SESSION_SCOPE_KEY = "mpr.session"  # the checked Session, for the routes that render the console's pages
SESSIONS_SCOPE_KEY = "mpr.sessions"  # the Sessions that signed it, for signing in and out

MALFORMED_COOKIE = "malformed session cookie: sign in again"
INVALID_COOKIE = "invalid session cookie: sign in again"
_MAC_BYTES = 16
_FINGERPRINT_BYTES = 9
_SID_BYTES = 12


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def scope_header(scope: Scope, name: bytes) -> bytes | None:
    """The first value of the header ``name`` (lower case) of an ASGI request; None without one."""
    for key, value in scope.get("headers", ()):
        if key == name:
            return value
    return None


def check_token(header: bytes, tokens: list[bytes]) -> str | None:
    """``None`` if ``header`` carries one of ``tokens``, else why not."""
    scheme, _, token = header.partition(b" ")
    if scheme.lower() != b"bearer" or not token.strip():
        return "missing bearer token (Authorization: Bearer <token>)"
    return None if token_matches(token.strip(), tokens) else "invalid bearer token"


def token_matches(given: bytes, tokens: list[bytes]) -> bool:
    # Every token compared, in constant time: neither which nor how much of one matched leaks.
    matched = False
    for t in tokens:
        matched |= hmac.compare_digest(given, t)
    return matched


def cookie_value(header: bytes, names: Iterable[str]) -> str | None:
    """The value of the first of ``names`` among the cookies of a Cookie header."""
    found: dict[str, str] = {}
    for part in header.decode("latin-1").split(";"):
        name, eq, value = part.strip().partition("=")
        if eq and name not in found:
            found[name] = value.strip().strip('"')
    return next((found[n] for n in names if found.get(n)), None)


@dataclass(frozen=True, slots=True)
class Session:
    sid: str
    expires: int
    csrf: str  # what the page sends back in X-MPR-CSRF


class Sessions:
    """Issues and checks console session cookies for the tokens of API_TOKENS."""

    def __init__(self, key: bytes, ttl: float, tokens: Iterable[str]) -> None:
        self._key = key
        self.ttl = ttl
        self._tokens = [t.encode() for t in sorted(tokens)]
        self._fingerprints = frozenset(self._fingerprint(t) for t in self._tokens)

    @classmethod
    def from_settings(cls, settings: HttpSettings) -> Sessions:
        key = settings.session_secret.encode() if settings.session_secret else derived_key(settings.tokens)
        return cls(key, settings.session_ttl, settings.tokens)

    def _mac(self, purpose: str, *parts: str) -> bytes:
        msg = "\x00".join(("mpr-session", purpose, *parts)).encode()
        return hmac.new(self._key, msg, hashlib.sha256).digest()

    def _fingerprint(self, token: bytes) -> str:
        digest = hmac.new(self._key, b"mpr-session-token\x00" + token, hashlib.sha256).digest()
        return _b64(digest[:_FINGERPRINT_BYTES])

    def sign_in(self, token: str, now: float | None = None) -> str | None:
        """A new session's cookie value, or ``None`` if ``token`` is not one of API_TOKENS."""
        given = token.strip().encode()
        if not given or not token_matches(given, self._tokens):
            return None
        expires = int((time.time() if now is None else now) + self.ttl)
        sid = _b64(secrets.token_bytes(_SID_BYTES))
        fingerprint = self._fingerprint(given)
        mac = _b64(self._mac("cookie", str(expires), sid, fingerprint)[:_MAC_BYTES])
        return f"{expires}.{sid}.{fingerprint}.{mac}"

    def check(self, value: str, now: float | None = None) -> Session | str:
        """The session a cookie value holds, or why it is refused."""
        parts = value.split(".")
        # ASCII digits only, and few of them (int() refuses "²" and numbers of thousands of digits)
        if len(parts) != 4 or not (parts[0].isascii() and parts[0].isdigit()) or len(parts[0]) > 12:
            return MALFORMED_COOKIE
        expires_text, sid, fingerprint, mac = parts
        expected = _b64(self._mac("cookie", expires_text, sid, fingerprint)[:_MAC_BYTES])
        if not hmac.compare_digest(mac.encode(), expected.encode()):
            return INVALID_COOKIE
        if int(expires_text) < (time.time() if now is None else now):
            return "your session has expired: sign in again"
        if fingerprint not in self._fingerprints:
            return "the token this session was signed in with is no longer accepted: sign in again"
        return Session(sid=sid, expires=int(expires_text), csrf=self.csrf(sid))

    def csrf(self, sid: str) -> str:
        return _b64(self._mac("csrf", sid)[:_MAC_BYTES])


class AuthThrottle:
    """Failed authentications per client: a bucket of ``per_minute`` that refills at ``per_minute`` a
    minute. At most ``max_clients`` clients are remembered (the least recently failed forgotten first),
    so addresses sprayed by an attacker cannot grow it without bound. ``per_minute`` 0: off."""

    def __init__(
        self,
        per_minute: int,
        client_header: str | None = None,
        max_clients: int = AUTH_THROTTLE_MAX_CLIENTS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.capacity = float(per_minute)
        self.rate = per_minute / 60.0
        self.header = client_header.strip().lower().encode() if client_header else None
        self.max_clients = max_clients
        self.clock = clock
        self._buckets: dict[str, tuple[float, float]] = {}  # client -> (tokens, at), least recent first

    @classmethod
    def from_settings(cls, settings: HttpSettings) -> AuthThrottle:
        return cls(settings.auth_failures_per_minute, settings.client_address_header)

    def __len__(self) -> int:
        return len(self._buckets)

    def client(self, scope: Scope) -> str:
        address = ""
        if self.header is not None:
            # the nearest proxy appends the address it saw: the last one is the one it vouches for
            address = (scope_header(scope, self.header) or b"").decode("latin-1").rsplit(",", 1)[-1].strip()
        if not address:
            peer = scope.get("client")
            address = str(peer[0]) if peer else ""
        try:
            ip = ipaddress.ip_address(address)
        except ValueError:
            return address[:64]
        if isinstance(ip, ipaddress.IPv6Address):
            if ip.ipv4_mapped is not None:
                return str(ip.ipv4_mapped)
            return str(ipaddress.IPv6Network((ip, 64), strict=False))  # one host has a /64 to spray
        return str(ip)

    def _tokens(self, client: str, now: float) -> float:
        tokens, at = self._buckets.get(client, (self.capacity, now))
        return min(self.capacity, tokens + (now - at) * self.rate)

    def retry_after(self, scope: Scope) -> int | None:
        """Seconds until the client may try again, or None if it may now."""
        if not self._buckets or not self.capacity:  # nobody failed: nothing to look up
            return None
        client = self.client(scope)
        if client not in self._buckets:
            return None
        tokens = self._tokens(client, self.clock())
        if tokens >= 1:
            return None
        return max(1, math.ceil((1 - tokens) / self.rate))

    def failed(self, scope: Scope) -> None:
        if not self.capacity:
            return
        client, now = self.client(scope), self.clock()
        tokens = self._tokens(client, now) - 1
        self._buckets.pop(client, None)  # re-inserted last: the most recent
        while self._buckets:
            oldest = next(iter(self._buckets))
            if len(self._buckets) < self.max_clients and self._tokens(oldest, now) < self.capacity:
                break
            del self._buckets[oldest]  # full again (it holds nothing), or the least recent of too many
        self._buckets[client] = (tokens, now)


def derived_key(tokens: Iterable[str]) -> bytes:
    """The signing key when API_SESSION_SECRET is unset: the same on every replica with the same tokens.
    Whoever could compute it holds every token already."""
    return hmac.new(b"mpr-session-key", "\x00".join(sorted(tokens)).encode(), hashlib.sha256).digest()


class Gate:
    """Who may pass: a bearer token of API_TOKENS, or on the console's paths its session cookie (with the
    CSRF header for a change). ``sessions`` signs and checks console cookies (``Sessions.from_settings``);
    without it, a key derived from the tokens and the default lifetime."""

    def __init__(
        self,
        tokens: frozenset[str],
        public_media: bool,
        sessions: Sessions | None = None,
        throttle: AuthThrottle | None = None,
    ) -> None:
        self.encoded = [t.encode() for t in sorted(tokens)]
        self.public_media = public_media
        if sessions is None or throttle is None:
            defaults = HttpSettings()
            if sessions is None:
                sessions = Sessions(derived_key(tokens), defaults.session_ttl, tokens)
            if throttle is None:
                throttle = AuthThrottle.from_settings(defaults)
        self.sessions = sessions
        self.throttle = throttle

    @classmethod
    def from_settings(cls, settings: HttpSettings) -> Gate:
        return cls(
            settings.tokens,
            settings.public_media,
            Sessions.from_settings(settings),
            AuthThrottle.from_settings(settings),
        )

    def watch(self, scope: Scope, send: Send) -> Send:
        """``send`` for a request the gate let through: a console sign-in the route refuses (401) is a
        failed authentication too."""
        if not self.encoded or scope["path"] != SIGN_IN_PATH or scope.get("method") != "POST":
            return send
        throttle = self.throttle

        async def watched(message: Message) -> None:
            if message["type"] == "http.response.start" and message["status"] == 401:
                throttle.failed(scope)
            await send(message)

        return watched

    async def admit(self, scope: Scope, receive: Receive, send: Send) -> bool:
        """True when the request may go on; otherwise it has been answered (401, 403 or a redirect to
        the console's sign-in page). ``scope`` is an http or websocket scope."""
        if not self.encoded:
            return True
        sessions = self.sessions
        scope[SESSIONS_SCOPE_KEY] = sessions  # type: ignore[literal-required]
        path = scope["path"]
        if path == SIGN_IN_PATH and scope.get("method") == "POST":
            return await self._not_throttled(scope, receive, send)  # the route checks the token
        if (
            path in OPEN_PATHS
            or path.startswith(OPEN_PREFIXES)
            or (self.public_media and path.startswith(MEDIA_PREFIX))
            or CALLBACK.match(path)
        ):
            return True
        if not await self._not_throttled(scope, receive, send):
            return False
        authorization = scope_header(scope, b"authorization") or b""
        if scope["type"] == "http" and not authorization and path.startswith(SESSION_PREFIXES):
            return await _session_admits(sessions, scope, send, self.throttle)
        reason = check_token(authorization, self.encoded)
        if reason is None:
            return True
        if authorization:  # a credential was given, and it was wrong
            self.throttle.failed(scope)
        await _deny(scope, receive, send, reason)
        return False

    async def _not_throttled(self, scope: Scope, receive: Receive, send: Send) -> bool:
        wait = self.throttle.retry_after(scope)
        if wait is None:
            return True
        reason = f"too many failed authentications from this address: try again in {wait} s"
        await _deny(scope, receive, send, reason, 429, [(b"retry-after", str(wait).encode())])
        return False


async def _deny(
    scope: Scope,
    receive: Receive,
    send: Send,
    reason: str,
    status: int = 401,
    headers: list[tuple[bytes, bytes]] | None = None,
) -> None:
    if scope["type"] == "websocket":  # refuse the handshake: policy violation (try again later: 1013)
        await receive()
        close: Message = {
            "type": "websocket.close",
            "code": 1008 if status == 401 else 1013,
            "reason": reason,
        }
        await send(close)
    elif status == 401:
        await _unauthorized(send, reason)
    else:
        await _refuse(send, status, reason, headers)


async def _session_admits(sessions: Sessions, scope: Scope, send: Send, throttle: AuthThrottle) -> bool:
    """A request without a bearer token on a path where the console's cookie is accepted."""
    path = scope["path"]
    page = path == CONSOLE_PREFIX or path.startswith(CONSOLE_PREFIX + "/")
    value = cookie_value(scope_header(scope, b"cookie") or b"", (SECURE_SESSION_COOKIE, SESSION_COOKIE))
    if value is None:
        if page and scope.get("method") in SAFE_METHODS:
            await _redirect(send, sign_in_location(scope, None))
        else:
            await _unauthorized(
                send, "missing bearer token (Authorization: Bearer <token>) or console session"
            )
        return False
    session = sessions.check(value)
    if isinstance(session, str):
        if session in (MALFORMED_COOKIE, INVALID_COOKIE):  # a forgery, not a session that ran out
            throttle.failed(scope)
        if page and scope.get("method") in SAFE_METHODS:
            await _redirect(send, sign_in_location(scope, session))
        else:
            await _unauthorized(send, session)
        return False
    if scope.get("method") not in SAFE_METHODS and not hmac.compare_digest(
        scope_header(scope, CSRF_HEADER.lower().encode()) or b"", session.csrf.encode()
    ):
        await _refuse(
            send,
            403,
            f"a change made with the console's session cookie needs its {CSRF_HEADER} header "
            "(the console's pages send it; other sites cannot)",
        )
        return False
    scope[SESSION_SCOPE_KEY] = session  # type: ignore[literal-required]
    return True


def sign_in_location(scope: Scope, reason: str | None) -> str:
    target = scope["path"]
    if scope.get("query_string"):
        target += "?" + scope["query_string"].decode("latin-1")
    location = f"{SIGN_IN_PATH}?next={quote(target, safe='/')}"
    return location + ("&expired=1" if reason else "")


async def _redirect(send: Send, location: str) -> None:
    start: Message = {
        "type": "http.response.start",
        "status": 303,
        "headers": [
            (b"location", location.encode("latin-1")),
            (b"content-length", b"0"),
            (b"cache-control", b"no-store"),
        ],
    }
    await send(start)
    await send({"type": "http.response.body", "body": b"", "more_body": False})


async def _unauthorized(send: Send, detail: str) -> None:
    await _refuse(send, 401, detail, [(b"www-authenticate", b'Bearer realm="mpr"')])


async def _refuse(
    send: Send, status: int, detail: str, extra: list[tuple[bytes, bytes]] | None = None
) -> None:
    body = encode_json({"status_code": status, "detail": detail})
    start: Message = {
        "type": "http.response.start",
        "status": status,
        "headers": [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
            *(extra or []),
        ],
    }
    end: Message = {"type": "http.response.body", "body": body, "more_body": False}
    await send(start)
    await send(end)
