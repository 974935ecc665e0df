"""Reads technical metadata of registered assets with ffprobe over presigned URLs."""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections.abc import Awaitable, Callable

from botocore.exceptions import BotoCoreError

from mpr_common.events import MediaInfo
from mpr_common.mediainfo import ProbeError, looks_like_network_error, probe, redact
from mpr_common.storage import get_presigned_url

from .ingest import NewAsset
from .metrics import PROBE_SECONDS

log = logging.getLogger(__name__)


class SourceUnreachable(Exception):
    """S3 could not be reached: probe again later, the asset stays pending."""


EMPTY_OBJECT_ERROR = "empty object (0 bytes): not media"
# ffprobe prefixes its error with the input URL; mediainfo.probe puts the object's key in its place (a
# presigned URL is a credential: never stored or logged). A reason shows neither.
_URL = re.compile(r"https?://\S+?(?::\s|\s|$)")
# FFmpeg's wording for HTTP answers ("Server returned 404 Not Found", "Server returned 4XX Client
# Error, but not one of 40{0,1,3,4}" for e.g. a 416): users only need the status.
_HTTP_STATUS = re.compile(r"Server returned (\d)(\d\d|XX)")


def readable_probe_error(message: str, key: str | None = None) -> str:
    """ffprobe's error line as a short reason, without any URL or the object's key in front."""
    if m := _HTTP_STATUS.search(message):
        return f"the storage answered HTTP {m.group(1)}{m.group(2).lower()}"
    message = _URL.sub("", redact(message))
    if key and message.startswith(f"{key}: "):
        message = message[len(key) + 2 :]
    return message.strip() or "ffprobe failed"


ProbeDone = Callable[[NewAsset, MediaInfo | None, str | None], Awaitable[None]]


Refill = Callable[[int, frozenset[str]], Awaitable[list[NewAsset]]]


class Prober:
    """A bounded pool of ffprobe runs fed by a bounded queue. The database is the real queue: an asset
    that does not fit stays ``pending`` and is loaded again (``refill``) when the queue runs low, so a
    100,000-object scan keeps memory flat, and a crash loses nothing. ffprobe runs at a lower CPU
    priority (``nice``): probing is background work that yields to listing and ingestion."""

    def __init__(
        self,
        s3_client,
        on_done: ProbeDone,
        concurrency: int = 2,
        timeout: float = 60.0,
        retry_delay: float = 10.0,
        *,
        refill: Refill | None = None,
        max_queued: int = 1000,
        nice: int = 10,
        busy: Callable[[], bool] | None = None,
    ) -> None:
        self.s3 = s3_client
        self.on_done = on_done
        self.concurrency = concurrency
        self.timeout = timeout
        self.retry_delay = retry_delay
        self.refill = refill
        self.max_queued = max_queued
        self.nice = nice
        self.busy = busy  # while it says so, probes wait: registering a scan comes first
        self.queue: asyncio.Queue[NewAsset] = asyncio.Queue()
        self._queued: set[str] = set()
        self._tasks: list[asyncio.Task] = []
        self._overflow = False
        self._refilling: asyncio.Task | None = None

    def submit(self, asset: NewAsset) -> None:
        if asset.id in self._queued:
            return
        if len(self._queued) >= self.max_queued:
            self._overflow = True  # it stays pending in the database; refill loads it later
            return
        self._queued.add(asset.id)
        self.queue.put_nowait(asset)

    def _maybe_refill(self) -> None:
        low = self.queue.qsize() < self.max_queued // 2
        if self._overflow and low and self.refill is not None and self._refilling is None:
            self._refilling = asyncio.create_task(self._refill())

    async def _refill(self) -> None:
        assert self.refill is not None
        try:
            want = self.max_queued - len(self._queued)
            assets = await self.refill(want, frozenset(self._queued))
            self._overflow = len(assets) >= want
            for a in assets:
                self.submit(a)
        except Exception:
            log.exception("loading pending probes failed; retried after the next probe")
        finally:
            self._refilling = None

    def start(self) -> None:
        self._tasks = [
            asyncio.create_task(self._worker(), name=f"probe-{i}") for i in range(self.concurrency)
        ]

    async def stop(self) -> None:
        for t in self._tasks:
            t.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _worker(self) -> None:
        while True:
            asset = await self.queue.get()
            # Time-based (no event marks a scan's last batch), so polled.
            while self.busy is not None and self.busy():  # noqa: ASYNC110
                await asyncio.sleep(0.25)
            try:
                info, error = await self.probe(asset)
                await self.on_done(asset, info, error)
            except asyncio.CancelledError:
                raise
            except (SourceUnreachable, BotoCoreError) as exc:
                log.warning("probe deferred: %s", exc, extra={"asset_id": asset.id})
                asyncio.get_running_loop().call_later(self.retry_delay, self.submit, asset)
            except Exception:  # the asset stays pending and is retried at the next start
                log.exception("probe bookkeeping failed", extra={"asset_id": asset.id})
            finally:
                self._queued.discard(asset.id)
                self.queue.task_done()
                self._maybe_refill()

    async def probe(self, asset: NewAsset) -> tuple[MediaInfo | None, str | None]:
        if asset.size == 0:
            # S3 answers 416 to ffprobe's range request on an empty object, which ffprobe reports
            # as an obscure HTTP error; there is nothing to probe anyway.
            return None, EMPTY_OBJECT_ERROR
        url = await asyncio.to_thread(get_presigned_url, asset.key, asset.bucket, 900, client=self.s3)
        started = time.monotonic()
        try:
            info = await probe(url, timeout=self.timeout, name=asset.key, nice=self.nice)
            PROBE_SECONDS.labels("ok").observe(time.monotonic() - started)
            return info, None
        except ProbeError as exc:
            PROBE_SECONDS.labels("error").observe(time.monotonic() - started)
            if looks_like_network_error(str(exc)):
                raise SourceUnreachable(readable_probe_error(str(exc), asset.key)) from None
            error = readable_probe_error(str(exc), asset.key)
            log.info("probe failed: %s", error, extra={"asset_id": asset.id, "key": asset.key})
            return None, error
