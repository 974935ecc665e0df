"""Continue the caller's W3C trace (``traceparent``) for each HTTP request, so the jobs it
publishes carry the same trace onto NATS."""

from __future__ import annotations

from litestar.types import ASGIApp, Receive, Scope, Send
from opentelemetry.trace import SpanKind

from mpr_common.tracing import span_from, worth_a_span


def trace_middleware(app: ASGIApp) -> ASGIApp:
    async def middleware(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await app(scope, receive, send)
            return
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope.get("headers", ())}
        if not worth_a_span(headers):
            await app(scope, receive, send)
            return
        with span_from(f"{scope.get('method', 'GET')} {scope['path']}", headers, kind=SpanKind.SERVER):
            await app(scope, receive, send)

    return middleware
