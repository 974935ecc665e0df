"""Reads technical metadata of registered assets with ffprobe over presigned URLs.

Measured on 2 cores (bench/probes.py): one ffprobe of a small object costs about 90 ms of CPU, nearly all
of it the start of the process (it loads some 200 shared libraries); reading the object costs moto about
5 ms and presigning 0.6 ms. Reading the head with boto3 and probing from a pipe saves nothing
measurable and cannot probe an MP4 whose index is at the end, so ffprobe reads the presigned URL. What
the rate needs is ffprobes in flight while others wait on S3 (the width follows the cores:
``settings.default_probe_concurrency``), and results recorded in batches, not one transaction each."""

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

from .ingest import NewAsset, ProbeResult
from .metrics import PROBE_SECONDS
from .settings import default_probe_concurrency

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
# Records many results at once (one transaction): what the probes finished while the last batch was written.
ProbesDone = Callable[[list[ProbeResult]], Awaitable[None]]
# Results recorded per batch at most
MAX_BATCH = 200


Refill = Callable[[int, frozenset[str]], Awaitable[list[NewAsset]]]


class Prober:
    """A bounded pool of ffprobe runs fed by a bounded queue. The database is the real queue: an asset
    that does not fit stays ``pending`` and is loaded again (``refill``) when the queue runs low, so a
    100,000-object scan keeps memory flat, and a crash loses nothing. ffprobe runs at a lower CPU
    priority (``nice``): probing is background work that yields to listing and ingestion.

    ``concurrency`` ffprobes run at once (None: :func:`~.settings.default_probe_concurrency`, from the
    cores). Results go to one recorder, so probing never waits on the database: ``on_batch`` gets every
    result finished meanwhile (up to :data:`MAX_BATCH`) in one call; without it, ``on_done`` gets them one
    by one. An asset counts as queued until its result is recorded (a refill never loads it twice)."""

    def __init__(
        self,
        s3_client,
        on_done: ProbeDone | None,
        concurrency: int | None = None,
        timeout: float = 60.0,
        retry_delay: float = 10.0,
        *,
        refill: Refill | None = None,
        max_queued: int = 1000,
        nice: int = 10,
        busy: Callable[[], bool] | None = None,
        on_batch: ProbesDone | None = None,
    ) -> None:
        self.s3 = s3_client
        self.on_done = on_done
        self.on_batch = on_batch
        self.concurrency = concurrency if concurrency and concurrency > 0 else default_probe_concurrency()
        self.timeout = timeout
        self.retry_delay = retry_delay
        self.refill = refill
        self.max_queued = max_queued
        self.nice = nice
        self.busy = busy  # while it says so, probes wait: registering a scan comes first
        self.queue: asyncio.Queue[NewAsset] = asyncio.Queue()
        self._results: asyncio.Queue[ProbeResult] = asyncio.Queue()
        self._queued: set[str] = set()
        self._tasks: list[asyncio.Task] = []
        self._overflow = False
        self._refilling: asyncio.Task | None = None
        self.running = 0  # ffprobes (or presigns) in flight now
        self.peak_running = 0  # the most at once since start

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
        self._tasks.append(asyncio.create_task(self._recorder(), name="probe-recorder"))

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
            recorded = False
            self.running += 1
            self.peak_running = max(self.peak_running, self.running)
            try:
                info, error = await self.probe(asset)
                self._results.put_nowait(ProbeResult(asset, info, error))
                recorded = True  # the recorder ends its bookkeeping
            except asyncio.CancelledError:
                raise
            except (SourceUnreachable, BotoCoreError) as exc:
                log.warning("probe deferred: %s", exc, extra={"asset_id": asset.id})
                asyncio.get_running_loop().call_later(self.retry_delay, self.submit, asset)
            except Exception:  # the asset stays pending and is retried at the next start
                log.exception("probe failed unexpectedly", extra={"asset_id": asset.id})
            finally:
                self.running -= 1
                self.queue.task_done()
                if not recorded:
                    self._queued.discard(asset.id)
                    self._maybe_refill()

    async def _recorder(self) -> None:
        """Records results in batches: whatever finished while the previous batch was written."""
        while True:
            batch = [await self._results.get()]
            while len(batch) < MAX_BATCH and not self._results.empty():
                batch.append(self._results.get_nowait())
            try:
                if self.on_batch is not None:
                    await self.on_batch(batch)
                elif self.on_done is not None:
                    for r in batch:
                        await self.on_done(r.asset, r.info, r.error)
            except asyncio.CancelledError:
                raise
            except Exception:  # the assets stay pending and are probed again at the next start
                log.exception("recording %d probe results failed", len(batch))
            finally:
                for r in batch:
                    self._queued.discard(r.asset.id)
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
