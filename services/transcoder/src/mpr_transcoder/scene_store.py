"""A source's scene changes, detected once per object version and kept in ``SCENES_KV`` for every job on
it (what is kept and how kinds use it: :mod:`mpr_common.scenes`).

A transcode that encodes the whole source finds them on the way (an extra output of its command, the
picture it decodes anyway scaled and scored: no second read of the source) and offers them
(:meth:`SceneStore.offer`: kept unless another job's are); a chunked one's chunks find those of their
spans, and its join offers them all (``kinds.transcode``). A job that needs them before it starts (a
per-title analysis) reads the entry; when it is missing or describes another version of the object,
the job claims it (a KV create, or an update at the revision it read: one compare-and-set, so of two
jobs only one wins), runs the detector (:mod:`.ffmpeg.scdet`) and stores the result over its claim.
A job that finds a fresh claim of another waits for its result, reading the entry every
:data:`POLL_SECONDS`; the claimant renews its claim while it detects, so a claim older than
:data:`CLAIM_SECONDS` is one whose transcoder died: it is taken over.

The store is a shortcut and never fails a job: when NATS does not answer, the job detects on its own
(and keeps nothing); when the detector fails (a source it cannot decode), the job goes on without scenes
and the claim is withdrawn, so that a later job tries again. Only a cancel stops the job."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import msgspec
from nats.errors import Error as NatsError
from nats.js.errors import KeyNotFoundError, KeyWrongLastSequenceError
from nats.js.kv import KeyValue

from mpr_common.codec import DecodeError, ValidationError, decode, encode
from mpr_common.jetstream import delete_at
from mpr_common.scenes import DETECTING, DONE, SourceScenes, scenes_key

from .ffmpeg import FfmpegCancelled, FfmpegError
from .ffmpeg.argv import NETWORK_PROTOCOLS
from .ffmpeg.scdet import SCENE_THRESHOLD, read_scenes, scene_args
from .steps import StepRunner

log = logging.getLogger("mpr.transcoder")

CLAIM_SECONDS = 10.0  # a claim not renewed for this long (renewed every third of it) is a dead transcoder's
POLL_SECONDS = 0.25  # how often a waiting job reads the entry
STORE_ERRORS = (NatsError, TimeoutError, OSError)


async def detect_scenes(
    step: StepRunner, url: str, report_dir: Path, protocols: str = NETWORK_PROTOCOLS
) -> list[float]:
    """Run the detector over the source at ``url`` (its log in a file of ``report_dir``, removed after)."""
    report = await asyncio.to_thread(_report_file, report_dir)
    try:
        await step(scene_args(url, protocols), report=report)
        return await asyncio.to_thread(read_scenes, report)
    finally:
        await asyncio.to_thread(report.unlink, True)


def _report_file(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix="scenes-", suffix=".log", dir=folder)
    os.close(fd)
    return Path(name)


class SceneLookup:
    """One job's view of its source's scenes: :meth:`detected` reads them or detects them in a pass of
    their own (in the job's step, once across jobs: a per-title analysis, which needs them before it
    starts); :meth:`known` only reads them (a preview reads a few seconds of the source, a pass over all
    of it would cost more than its own work); :meth:`keep` offers what a command that decoded the whole
    source for its own output found on the way (a transcode's detector output: no second read)."""

    def __init__(
        self, store: SceneStore, bucket: str, key: str, etag: str, size: int, url: str, report_dir: Path
    ) -> None:
        self.store = store
        self.source = (bucket, key, etag, size)
        self.url = url
        self.report_dir = report_dir

    async def detected(self, step: StepRunner) -> list[float]:
        async def detect() -> list[float]:
            return await detect_scenes(step, self.url, self.report_dir)

        return await self.store.scenes(*self.source, detect)

    async def known(self) -> list[float] | None:
        """The scenes kept for this version of the source; None when no job has detected them."""
        return await self.store.known(*self.source)

    async def keep(self, cuts: list[float]) -> None:
        """Keep the scenes a command found that decoded the whole source for its own output."""
        await self.store.offer(*self.source, cuts)


class SceneStore:
    """``SCENES_KV`` as the transcoder uses it: :meth:`lookup` binds one job's source."""

    def __init__(
        self,
        kv: KeyValue,
        instance: str,
        *,
        claim_seconds: float = CLAIM_SECONDS,
        poll_seconds: float = POLL_SECONDS,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.kv = kv
        self.instance = instance
        self.claim_seconds = claim_seconds
        self.poll_seconds = poll_seconds
        self.clock = clock

    def lookup(self, bucket: str, key: str, etag: str, size: int, url: str, report_dir: Path) -> SceneLookup:
        """One job's view of the scenes of ``bucket/key`` at ``etag`` and ``size`` (read through ``url``)."""
        return SceneLookup(self, bucket, key, etag, size, url, report_dir)

    async def known(self, bucket: str, key: str, etag: str, size: int) -> list[float] | None:
        """The stored scenes of that object version; None when nobody has detected them (yet)."""
        try:
            entry, _ = await self._read(scenes_key(bucket, key))
        except STORE_ERRORS as exc:
            log.warning("scene store unavailable (%s): going on without scenes", exc)
            return None
        if entry is None or entry.state != DONE or not entry.is_of(bucket, key, etag, size):
            return None
        return list(entry.scenes)

    async def offer(self, bucket: str, key: str, etag: str, size: int, cuts: list[float]) -> None:
        """Keep ``cuts`` as that object version's scenes unless another job's are kept or being detected
        (never fails: a lost race or an unreachable store keeps nothing)."""
        k = scenes_key(bucket, key)
        done = SourceScenes(
            bucket=bucket, key=key, etag=etag, size=size, state=DONE, scenes=list(cuts),
            threshold=SCENE_THRESHOLD, by=self.instance, at=self.clock(),
        )  # fmt: skip
        try:
            entry, revision = await self._read(k)
            if entry is not None and entry.is_of(bucket, key, etag, size):
                if entry.state == DONE or self.clock() - entry.at < self.claim_seconds:
                    return
            if revision is None:
                await self.kv.create(k, encode(done))
            else:
                await self.kv.update(k, encode(done), last=revision)
        except KeyWrongLastSequenceError:
            pass
        except STORE_ERRORS as exc:
            log.warning("scenes of %s/%s not kept: %s", bucket, key, exc)

    async def scenes(
        self, bucket: str, key: str, etag: str, size: int, detect: Callable[[], Awaitable[list[float]]]
    ) -> list[float]:
        """The stored scenes of that object version; else ``detect()``'s, stored, once across jobs."""
        k = scenes_key(bucket, key)
        mine = SourceScenes(bucket=bucket, key=key, etag=etag, size=size, state=DETECTING, by=self.instance)
        while True:
            try:
                entry, revision = await self._read(k)
                if entry is not None and entry.is_of(bucket, key, etag, size):
                    if entry.state == DONE:
                        return list(entry.scenes)
                    if self.clock() - entry.at < self.claim_seconds:  # another job detects them
                        await asyncio.sleep(self.poll_seconds)
                        continue
                claimed = await self._claim(k, mine, revision)
            except STORE_ERRORS as exc:
                log.warning("scene store unavailable (%s): detecting without keeping them", exc)
                return await _safely(detect, bucket, key)
            if claimed is not None:
                return await self._detect_claimed(k, mine, claimed, detect)

    async def _read(self, k: str) -> tuple[SourceScenes | None, int | None]:
        """The entry (None when absent or unreadable) and its revision (None when absent)."""
        try:
            entry = await self.kv.get(k)
        except KeyNotFoundError:
            return None, None
        if not entry.value:  # deleted (a withdrawn claim): its tombstone's revision is what to update
            return None, entry.revision
        try:
            return decode(entry.value, SourceScenes), entry.revision
        except (DecodeError, ValidationError):
            return None, entry.revision

    async def _claim(self, k: str, mine: SourceScenes, revision: int | None) -> int | None:
        """Our claim's revision, or None when another job changed the entry first."""
        claim = _stamped(mine, self.clock())
        try:
            if revision is None:
                return await self.kv.create(k, encode(claim))
            return await self.kv.update(k, encode(claim), last=revision)
        except KeyWrongLastSequenceError:
            return None

    async def _detect_claimed(
        self, k: str, mine: SourceScenes, revision: int, detect: Callable[[], Awaitable[list[float]]]
    ) -> list[float]:
        held = [revision]
        renew = asyncio.create_task(self._renew(k, mine, held))
        began = time.monotonic()
        try:
            cuts = await detect()
        except FfmpegError as exc:
            await self._stop(renew)
            await self._withdraw(k, held)
            if isinstance(exc, FfmpegCancelled):
                raise
            log.warning(
                "scene detection of %s/%s failed (%s): going on without scenes", mine.bucket, mine.key, exc
            )
            return []
        except BaseException:  # the job is stopped: waiting jobs detect without waiting for the claim to age
            await self._stop(renew)
            await self._withdraw(k, held)
            raise
        await self._stop(renew)
        done = msgspec.structs.replace(
            mine,
            state=DONE,
            scenes=cuts,
            threshold=SCENE_THRESHOLD,
            at=self.clock(),
            elapsed=round(time.monotonic() - began, 3),
        )
        try:
            await self.kv.update(k, encode(done), last=held[0])
        except KeyWrongLastSequenceError:  # taken over while we detected: theirs holds
            pass
        except STORE_ERRORS as exc:
            log.warning("scenes of %s/%s not kept: %s", mine.bucket, mine.key, exc)
        return cuts

    async def _renew(self, k: str, mine: SourceScenes, held: list[int]) -> None:
        """Renew the claim while the detector runs, so that waiting jobs keep waiting."""
        while True:
            await asyncio.sleep(self.claim_seconds / 3)
            with contextlib.suppress(*STORE_ERRORS, KeyWrongLastSequenceError):
                held[0] = await self.kv.update(k, encode(_stamped(mine, self.clock())), last=held[0])

    @staticmethod
    async def _stop(renew: asyncio.Task[None]) -> None:
        renew.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await renew

    async def _withdraw(self, k: str, held: list[int]) -> None:
        with contextlib.suppress(*STORE_ERRORS, KeyWrongLastSequenceError):
            await delete_at(self.kv, k, held[0])


def _stamped(entry: SourceScenes, at: float) -> SourceScenes:
    return msgspec.structs.replace(entry, at=at)


async def _safely(detect: Callable[[], Awaitable[list[float]]], bucket: str, key: str) -> list[float]:
    try:
        return await detect()
    except FfmpegCancelled:
        raise
    except FfmpegError as exc:
        log.warning("scene detection of %s/%s failed (%s): going on without scenes", bucket, key, exc)
        return []
