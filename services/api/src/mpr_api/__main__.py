from __future__ import annotations

import uvicorn
from litestar import Litestar

from mpr_common.logs import setup_logging
from mpr_common.ops_server import OpsServer
from mpr_common.runtime import run
from mpr_common.tracing import setup_tracing

from .app import create_app
from .settings import ApiSettings
from .state import state_of


def nats_connected(app: Litestar) -> bool:
    """Ready as ``/health/ready`` on the API port is: its NATS connection is up."""
    nc = state_of(app).nc
    return bool(nc is not None and nc.is_connected)


async def serve(settings: ApiSettings, app: Litestar) -> None:
    """The API on its public port and ``/metrics`` (with ``/health/*``) on ``METRICS_PORT`` only: the
    public port sits behind proxies that publish it, and metrics name routes, job kinds and rates that
    are nobody's business outside the cluster. ``METRICS_PORT`` unset: no metrics endpoint at all."""
    ops = OpsServer(settings.metrics_port, lambda: nats_connected(app), settings.metrics_host)
    await ops.start()
    try:
        config = uvicorn.Config(
            app,
            host=settings.host,
            port=settings.port,
            log_config=None,
            access_log=False,
            timeout_graceful_shutdown=10,
            lifespan="on",
        )
        server = uvicorn.Server(config)
        await server.serve()
    finally:
        await ops.stop()
    if not server.started:  # as uvicorn.run: a failed start-up is a failed process
        raise SystemExit(3)


def main() -> None:
    settings = ApiSettings.from_env()
    setup_logging("api", settings.log_level, settings.log_format)
    setup_tracing("api")
    run(serve(settings, create_app(settings)))


if __name__ == "__main__":
    main()
