"""The API's one ASGI layer in front of its routes: who may pass (``auth.Gate``), the playback routes'
CORS (``player_cors``), the request kept for absolute media links (``request_url``), the caller's W3C
trace continued, and the HTTP metrics.

One layer rather than four middlewares: each layer of the stack cost about as much as the check it
made, and the four together were a fifth of the CPU of ``POST /api/jobs`` (measured in process).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, cast

from litestar.types import ASGIApp, HTTPScope, Message, Receive, Scope, Send
from opentelemetry.trace import SpanKind

from mpr_common.tracing import http_trace_headers, span_from

from . import metrics as http_metrics
from .auth import Gate
from .player_cors import PLAYBACK_PREFIXES, PlayerCors, is_preflight
from .request_url import forget_request, remember_request


def edge(gate: Gate, players: PlayerCors) -> Callable[[ASGIApp], ASGIApp]:
    """Litestar middleware factory (``middleware=[edge(gate, players)]``): ``players`` is the CORS of
    the playback routes, the only routes that have any."""

    def factory(app: ASGIApp) -> ASGIApp:
        async def middleware(scope: Scope, receive: Receive, send: Send) -> None:
            kind = scope["type"]
            if kind != "http":
                if kind == "websocket" and not await gate.admit(scope, receive, send):
                    return
                await app(scope, receive, send)
                return
            if not await gate.admit(scope, receive, send):
                return
            send = gate.watch(scope, send)
            target = app
            if scope["path"].startswith(PLAYBACK_PREFIXES):
                if is_preflight(scope):
                    target = players.preflight
                else:
                    send = players.watch(scope, send)
            remembered = remember_request(scope)
            try:
                if scope["path"].startswith(http_metrics.SKIPPED_PREFIXES):
                    await target(scope, receive, send)
                else:
                    await _measured(target, cast("HTTPScope", scope), receive, send)
            finally:
                forget_request(remembered)

        return middleware

    return factory


async def _measured(app: ASGIApp, scope: HTTPScope, receive: Receive, send: Send) -> None:
    status = 500
    started = time.perf_counter()

    async def send_status(message: Message) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = message["status"]
        await send(message)

    try:
        headers = http_trace_headers(scope.get("headers", ()))
        if headers is None:
            await app(scope, receive, send_status)
        else:
            with span_from(f"{scope['method']} {scope['path']}", headers, kind=SpanKind.SERVER):
                await app(scope, receive, send_status)
    finally:
        # The route's template, which Litestar's router put in the scope: bounded label values.
        template = cast("dict[str, Any]", scope).get("path_template", "unmatched")
        http_metrics.observe(scope["method"], template, status, time.perf_counter() - started)
