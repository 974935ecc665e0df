"""Bearer-token authentication (tokens from API_TOKENS; off when none are configured)."""

from __future__ import annotations

import hmac

from litestar.connection import ASGIConnection
from litestar.exceptions import NotAuthorizedException
from litestar.handlers.base import BaseRouteHandler

OPEN_PREFIXES = ("/health", "/schema", "/metrics")


def token_guard(tokens: frozenset[str], public_media: bool):
    encoded = [t.encode() for t in tokens]

    # async: Litestar runs a synchronous guard in a thread pool, a hand-off per request.
    async def guard(connection: ASGIConnection, _handler: BaseRouteHandler) -> None:
        if not encoded:
            return
        path = connection.scope["path"]
        if path.startswith(OPEN_PREFIXES) or (public_media and path.startswith("/media/")):
            return
        header = connection.headers.get("authorization", "")
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token:
            raise NotAuthorizedException("missing bearer token (Authorization: Bearer <token>)")
        given = token.strip().encode()
        if not any(hmac.compare_digest(given, t) for t in encoded):
            raise NotAuthorizedException("invalid bearer token")

    return guard
