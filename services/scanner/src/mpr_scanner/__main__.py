from __future__ import annotations

from mpr_common.logs import setup_logging
from mpr_common.runtime import run
from mpr_common.tracing import setup_tracing

from .app import create_app
from .settings import ScannerSettings


def main() -> None:
    settings = ScannerSettings.from_env()
    setup_logging("scanner", settings.log_level, settings.log_format)
    setup_tracing("scanner")
    run(create_app(settings).run())


if __name__ == "__main__":
    main()
