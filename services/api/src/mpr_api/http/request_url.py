"""The request being answered, kept for the code that makes absolute links (``assets/media_links.py``):
``edge.py`` remembers every http request's scope."""

from __future__ import annotations

from contextvars import ContextVar, Token

from litestar.types import Scope

# The base URL (scheme://host[:port][root_path]) of the request being answered: absolute links name the
# address the client used, unless API_PUBLIC_URL says otherwise (a proxy that rewrites Host).
# The scope is kept, and read only when a link is made: most requests (POST /api/jobs) never need it.
_request_scope: ContextVar[Scope | None] = ContextVar("mpr_request_scope", default=None)


def base_url_of(scope: Scope) -> str | None:
    host = next((v.decode("latin-1") for k, v in scope.get("headers", ()) if k == b"host"), None)
    if not host:
        server = scope.get("server")
        if not server:
            return None
        host = f"{server[0]}:{server[1]}"
    return f"{scope.get('scheme', 'http')}://{host}{scope.get('root_path', '')}"


def remember_request(scope: Scope) -> Token[Scope | None]:
    """Keep ``scope`` as the request being answered (``edge.py`` does, for every http request)."""
    return _request_scope.set(scope)


def forget_request(token: Token[Scope | None]) -> None:
    _request_scope.reset(token)


def request_base_url() -> str | None:
    """The base URL of the request being answered, None outside one."""
    scope = _request_scope.get()
    return base_url_of(scope) if scope is not None else None
