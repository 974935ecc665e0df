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
preflight, which the API never grants. A bearer token in the Authorization header always wins over the
cookie: a browser never sends one on its own, so such a request needs no CSRF token."""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING
from urllib.parse import quote

from litestar.serialization import encode_json
from litestar.types import Message, Receive, Scope, Send

from .media_links import SIGNED_PREFIX

if TYPE_CHECKING:
    from .settings import ApiSettings

CONSOLE_PREFIX = "/console"
SIGN_IN_PATH = "/console/sign-in"
SIGN_OUT_PATH = "/console/sign-out"
CONSOLE_STATIC_PREFIX = "/console/static/"
# Signed media links carry their own credential (players and ffprobe cannot send a bearer token); the
# console's sign-in page, its static files and the redirect from / to the console hold no data.
OPEN_PREFIXES = ("/health", "/schema", "/metrics", SIGNED_PREFIX, CONSOLE_STATIC_PREFIX)
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

_MAC_BYTES = 16
_FINGERPRINT_BYTES = 9
_SID_BYTES = 12


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _header(scope: Scope, name: bytes) -> bytes:
    for key, value in scope.get("headers", ()):
        if key == name:
            return value
    return b""


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
    def from_settings(cls, settings: ApiSettings) -> Sessions:
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
            return "malformed session cookie: sign in again"
        expires_text, sid, fingerprint, mac = parts
        expected = _b64(self._mac("cookie", expires_text, sid, fingerprint)[:_MAC_BYTES])
        if not hmac.compare_digest(mac.encode(), expected.encode()):
            return "invalid session cookie: sign in again"
        if int(expires_text) < (time.time() if now is None else now):
            return "your session has expired: sign in again"
        if fingerprint not in self._fingerprints:
            return "the token this session was signed in with is no longer accepted: sign in again"
        return Session(sid=sid, expires=int(expires_text), csrf=self.csrf(sid))

    def csrf(self, sid: str) -> str:
        return _b64(self._mac("csrf", sid)[:_MAC_BYTES])


def derived_key(tokens: Iterable[str]) -> bytes:
    """The signing key when API_SESSION_SECRET is unset: the same on every replica with the same tokens.
    Whoever could compute it holds every token already."""
    return hmac.new(b"mpr-session-key", "\x00".join(sorted(tokens)).encode(), hashlib.sha256).digest()


class Gate:
    """Who may pass: a bearer token of API_TOKENS, or on the console's paths its session cookie (with the
    CSRF header for a change). ``sessions`` signs and checks console cookies (``Sessions.from_settings``);
    without it, a key derived from the tokens and the default lifetime."""

    def __init__(self, tokens: frozenset[str], public_media: bool, sessions: Sessions | None = None) -> None:
        self.encoded = [t.encode() for t in sorted(tokens)]
        self.public_media = public_media
        if sessions is None:
            from .settings import ApiSettings

            sessions = Sessions(derived_key(tokens), ApiSettings().session_ttl, tokens)
        self.sessions = sessions

    async def admit(self, scope: Scope, receive: Receive, send: Send) -> bool:
        """True when the request may go on; otherwise it has been answered (401, 403 or a redirect to
        the console's sign-in page). ``scope`` is an http or websocket scope."""
        if not self.encoded:
            return True
        sessions = self.sessions
        scope[SESSIONS_SCOPE_KEY] = sessions  # type: ignore[literal-required]
        path = scope["path"]
        if (
            path in OPEN_PATHS
            or path.startswith(OPEN_PREFIXES)
            or (self.public_media and path.startswith(MEDIA_PREFIX))
            or CALLBACK.match(path)
        ):
            return True
        authorization = _header(scope, b"authorization")
        if scope["type"] == "http" and not authorization and path.startswith(SESSION_PREFIXES):
            return await _session_admits(sessions, scope, send)
        reason = check_token(authorization, self.encoded)
        if reason is None:
            return True
        if scope["type"] == "websocket":  # refuse the handshake: policy violation
            await receive()
            close: Message = {"type": "websocket.close", "code": 1008, "reason": reason}
            await send(close)
        else:
            await _unauthorized(send, reason)
        return False


async def _session_admits(sessions: Sessions, scope: Scope, send: Send) -> bool:
    """A request without a bearer token on a path where the console's cookie is accepted."""
    path = scope["path"]
    page = path == CONSOLE_PREFIX or path.startswith(CONSOLE_PREFIX + "/")
    value = cookie_value(_header(scope, b"cookie"), (SECURE_SESSION_COOKIE, SESSION_COOKIE))
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
        if page and scope.get("method") in SAFE_METHODS:
            await _redirect(send, sign_in_location(scope, session))
        else:
            await _unauthorized(send, session)
        return False
    if scope.get("method") not in SAFE_METHODS and not hmac.compare_digest(
        _header(scope, CSRF_HEADER.lower().encode()), session.csrf.encode()
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
