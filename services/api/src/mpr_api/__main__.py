from __future__ import annotations

import uvicorn

from mpr_common.logs import setup_logging
from mpr_common.tracing import setup_tracing

from .app import create_app
from .settings import ApiSettings


def main() -> None:
    settings = ApiSettings.from_env()
    setup_logging("api", settings.log_level, settings.log_format)
    setup_tracing("api")
    uvicorn.run(
        create_app(settings),
        host=settings.host,
        port=settings.port,
        log_config=None,
        access_log=False,
        timeout_graceful_shutdown=10,
        lifespan="on",
    )


if __name__ == "__main__":
    main()
