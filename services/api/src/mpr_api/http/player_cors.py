"""CORS for web players on other origins, on the token-bound playback routes only: signed media links
(``/media/s/``), AES-128 key URIs (``/media/keys/``) and ClearKey licences (``/media/licenses/``).

Their credential is the token in the URL, which a page holds only if it was handed the link; no cookie
is ever read there (:meth:`PlayerCors.watch` removes it before the route runs) and
``Access-Control-Allow-Credentials`` is never sent, so a page on an allowed origin can read what its
link grants and nothing a browser's session would. Every other path (``/api``, ``/graphql``, the
console, ``/media/in|out``, which take the console's session cookie) gets no CORS header and its
preflight is never granted: ``auth.py``'s CSRF argument rests on that.

Which origins may play is API_PLAYER_ORIGINS (``http/settings.py``): ``*`` answers
``Access-Control-Allow-Origin: *``; a list echoes an origin of the list with ``Vary: Origin`` (and sends
only ``Vary: Origin`` to the others); empty, no origin but the API's own."""

from __future__ import annotations

from collections.abc import Iterable

from litestar.serialization import encode_json
from litestar.types import Message, Method, Receive, Scope, Send

from mpr_common.content_keys import KEY_PATH_PREFIX, LICENSE_PATH_PREFIX

from .auth import SIGNED_PREFIX, scope_header
from .origins import ANY_ORIGIN

# The methods of each playback route: its handler declares these (assets/media_routes.py), a preflight
# grants these. A signed link is read (HEAD: ffprobe and players sizing a file), a key fetched, a
# licence requested with a JSON body.
SIGNED_MEDIA_METHODS: tuple[Method, ...] = ("GET", "HEAD")
KEY_METHODS: tuple[Method, ...] = ("GET",)
LICENSE_METHODS: tuple[Method, ...] = ("POST",)
PLAYBACK_ROUTES: tuple[tuple[str, tuple[Method, ...]], ...] = (
    (SIGNED_PREFIX, SIGNED_MEDIA_METHODS),
    (KEY_PATH_PREFIX, KEY_METHODS),
    (LICENSE_PATH_PREFIX, LICENSE_METHODS),
)
PLAYBACK_PREFIXES = tuple(prefix for prefix, _ in PLAYBACK_ROUTES)
# What a player's request may carry beyond the safelisted headers: the licence's JSON Content-Type and
# a byte range of a segment (a Range a browser does not safelist is preflighted).
REQUEST_HEADERS = ("Content-Type", "Range")
# What a player reads of an answer beyond the safelisted headers: a segment's size and range.
EXPOSED_HEADERS = ("Content-Length", "Content-Range", "Accept-Ranges")
# How long a browser keeps a granted preflight: Chromium's cap (Firefox keeps at most a day).
MAX_AGE_SECONDS = 7200

_REQUEST_HEADERS = frozenset(h.lower() for h in REQUEST_HEADERS)
_EXPOSED = ", ".join(EXPOSED_HEADERS).encode()
_ALLOWED_HEADERS = ", ".join(REQUEST_HEADERS).encode()
_METHODS = {prefix: (frozenset(methods), ", ".join(methods).encode()) for prefix, methods in PLAYBACK_ROUTES}


def is_preflight(scope: Scope) -> bool:
    return (
        scope.get("method") == "OPTIONS" and scope_header(scope, b"access-control-request-method") is not None
    )


class PlayerCors:
    """The playback routes' CORS for ``origins`` (as :func:`~mpr_api.http.origins.parse_origins` gives
    them: ``{"*"}``, a set of serialized origins, or empty)."""

    def __init__(self, origins: Iterable[str]) -> None:
        self.origins = frozenset(origins)
        self.any = ANY_ORIGIN in self.origins

    def allowed(self, origin: bytes | None) -> bytes | None:
        """What ``Access-Control-Allow-Origin`` says to a request from ``origin`` (its ``Origin``
        header, None without one), or None: not allowed."""
        if self.any:
            return b"*"
        if origin is None or not self.origins:
            return None
        return origin if origin.decode("latin-1") in self.origins else None

    def _vary(self) -> list[tuple[bytes, bytes]]:
        # An answer that echoes the origin differs by origin: a cache must keep one per origin.
        return [] if self.any else [(b"vary", b"Origin")]

    def watch(self, scope: Scope, send: Send) -> Send:
        """``send`` for a playback route's request (not a preflight): its answer, errors and redirects
        included, carries the CORS headers its origin gets. The request's cookies are dropped first:
        the route's credential is its token, never a browser's session."""
        scope["headers"] = [(k, v) for k, v in scope.get("headers", ()) if k != b"cookie"]
        allow = self.allowed(scope_header(scope, b"origin"))
        extra = self._vary()
        if allow is not None:
            extra += [(b"access-control-allow-origin", allow), (b"access-control-expose-headers", _EXPOSED)]
        if not extra:
            return send

        async def watched(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = merge_headers(message.get("headers", ()), extra)
            await send(message)

        return watched

    async def preflight(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Answers the preflight (an OPTIONS with ``Access-Control-Request-Method``) of a playback route:
        204 with the grant, or 403 without one, saying why."""
        path = scope["path"]
        methods, listed = next(_METHODS[p] for p in PLAYBACK_PREFIXES if path.startswith(p))
        origin = scope_header(scope, b"origin")
        allow = self.allowed(origin)
        method = (scope_header(scope, b"access-control-request-method") or b"").decode("latin-1").upper()
        asked = scope_header(scope, b"access-control-request-headers") or b""
        unknown = sorted(
            {h.strip() for h in asked.decode("latin-1").lower().split(",")} - _REQUEST_HEADERS - {""}
        )
        if allow is None:
            reason = "this origin may not play from this API (API_PLAYER_ORIGINS)"
        elif method not in methods:
            reason = f"{method or 'no method'} is not allowed here: {listed.decode()}"
        elif unknown:
            reason = f"headers not allowed here: {', '.join(unknown)} (allowed: {_ALLOWED_HEADERS.decode()})"
        else:
            headers = [
                (b"access-control-allow-origin", allow),
                (b"access-control-allow-methods", listed),
                (b"access-control-allow-headers", _ALLOWED_HEADERS),
                (b"access-control-max-age", str(MAX_AGE_SECONDS).encode()),
                (b"content-length", b"0"),
                *self._vary(),
            ]
            await send({"type": "http.response.start", "status": 204, "headers": headers})
            await send({"type": "http.response.body", "body": b"", "more_body": False})
            return
        body = encode_json({"status_code": 403, "detail": f"CORS preflight refused: {reason}"})
        start: Message = {
            "type": "http.response.start",
            "status": 403,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                *self._vary(),
            ],
        }
        await send(start)
        await send({"type": "http.response.body", "body": body, "more_body": False})


def merge_headers(
    headers: Iterable[tuple[bytes, bytes]], extra: list[tuple[bytes, bytes]]
) -> list[tuple[bytes, bytes]]:
    """``headers`` with ``extra``: CORS headers the answer has already are replaced; a ``Vary`` in
    ``extra`` joins the answer's own (every ``Vary`` header of it, one list, each field once)."""
    names = {name for name, _ in extra}
    out: list[tuple[bytes, bytes]] = []
    varied: list[bytes] = []
    for name, value in headers:
        if name.lower() == b"vary" and b"vary" in names:
            varied += [v.strip() for v in value.split(b",") if v.strip()]
        elif name.lower() not in names:
            out.append((name, value))
    for name, value in extra:
        if name == b"vary":
            fields = {v.lower() for v in varied}
            if b"*" in fields:
                value = b"*"
            elif value.lower() not in fields:
                value = b", ".join([*varied, value])
            else:
                value = b", ".join(varied)
        out.append((name, value))
    return out
