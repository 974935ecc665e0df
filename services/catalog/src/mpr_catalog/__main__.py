from __future__ import annotations

import sys

from mpr_common.logs import setup_logging
from mpr_common.runtime import run
from mpr_common.tracing import setup_tracing

from .app import create_app
from .settings import CatalogSettings


def main() -> None:
    settings = CatalogSettings.from_env()
    setup_logging("catalog", settings.log_level, settings.log_format)
    if sys.argv[1:] == ["migrate"]:
        from .migrate import upgrade

        upgrade(settings.database_url)
        return
    setup_tracing("catalog")
    run(create_app(settings).run())


if __name__ == "__main__":
    main()
