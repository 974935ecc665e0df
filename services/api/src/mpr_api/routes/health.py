from __future__ import annotations

from litestar import Response, get

from ..backend import Backend


@get("/health/live", tags=["health"], include_in_schema=False)
async def live() -> dict[str, str]:
    return {"status": "ok"}


@get("/health/ready", tags=["health"], include_in_schema=False)
async def ready(backend: Backend) -> Response[dict[str, str]]:
    ok = backend.nc.is_connected
    return Response({"status": "ok" if ok else "nats disconnected"}, status_code=200 if ok else 503)
