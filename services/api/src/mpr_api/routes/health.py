from __future__ import annotations

from litestar import Request, Response, get


@get("/health/live", tags=["health"], include_in_schema=False)
async def live() -> dict[str, str]:
    return {"status": "ok"}


@get("/health/ready", tags=["health"], include_in_schema=False)
async def ready(request: Request) -> Response[dict[str, str]]:
    ok = request.app.state.nc.is_connected
    return Response({"status": "ok" if ok else "nats disconnected"}, status_code=200 if ok else 503)
