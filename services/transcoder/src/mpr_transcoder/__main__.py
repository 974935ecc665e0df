from __future__ import annotations

import asyncio
import logging
import signal

from mpr_common.bus import connect
from mpr_common.logs import setup_logging
from mpr_common.ops_server import OpsServer
from mpr_common.runtime import run
from mpr_common.storage import get_s3_client
from mpr_common.tracing import setup_tracing

from .settings import TranscoderSettings
from .workdir import clean_workdir
from .worker import Worker

log = logging.getLogger("mpr.transcoder")


async def serve(settings: TranscoderSettings) -> None:
    nc = await connect(settings.nats, f"mpr-transcoder-{settings.instance}")
    worker = Worker(settings, nc, get_s3_client(settings.s3))
    ops = OpsServer(settings.metrics_port, worker.ready, settings.metrics_host)
    await ops.start()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, worker.stop)
    lag = asyncio.create_task(worker.watch_lag())
    try:
        await worker.run()
    finally:
        lag.cancel()
        await ops.stop()


def main() -> None:
    settings = TranscoderSettings.from_env()
    setup_logging("transcoder", settings.log_level, settings.log_format)
    setup_tracing("transcoder")
    # What a worker killed with kill -9 (or OOM-killed) left in the work dir; FFmpeg died with it.
    removed = clean_workdir(settings.workdir)
    if removed:
        log.info("removed %d stale job dir(s) from %s", len(removed), settings.workdir)
    run(serve(settings))


if __name__ == "__main__":
    main()
