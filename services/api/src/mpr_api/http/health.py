"""``/health/live`` and ``/health/ready`` on the API port (ready: its NATS connection is up)."""

from __future__ import annotations

from typing import Any

from litestar import Request, Response, get

from ..feature import Feature
from ..state import state_of


@get("/health/live", tags=["health"], include_in_schema=False)
async def live() -> dict[str, str]:
    return {"status": "ok"}


@get("/health/ready", tags=["health"], include_in_schema=False)
async def ready(request: Request[Any, Any, Any]) -> Response[dict[str, str]]:
    nc = state_of(request.app).nc
    ok = nc is not None and nc.is_connected
    return Response({"status": "ok" if ok else "nats disconnected"}, status_code=200 if ok else 503)


FEATURE = Feature("health", routes=[live, ready])
