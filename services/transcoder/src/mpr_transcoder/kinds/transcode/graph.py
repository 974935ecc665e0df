"""A chunked transcode as a job graph (:mod:`..graph`): a ``transcode`` to MP4 or MOV of a source longer
than ``chunk_seconds`` (:data:`~mpr_common.jobs.DEFAULT_CHUNK_SECONDS` when not given; 0: never) becomes
one video chunk child per chunk of the source, cut on a fixed grid (:mod:`.parts`) or, when the
source's scene cuts are known (``mpr-scenes``), at the cuts near its boundaries, spread over every
transcoder, and one child for the sound over the whole source; the transcoder that completes the
last of them joins them (:meth:`TranscodeGraph.complete`) into the transcode's output key, under the
graph's lock, and removes the parts. When the source's scenes were not known, each chunk found those
of its span on the way: the join keeps them all as the source's (for the jobs after it), once.

Children are transcode jobs of their own (``parent_id`` the transcode): ``<id>-c<index>`` with ``chunk``
for the video, ``<id>-audio`` (``rendition`` ``audio``) for the sound, writing beside the output in
``<output stem>.parts/``. A transcode with a range (``start``/``end``), a job id too long for its
children's names, or no video stream runs as one job."""

from __future__ import annotations

import asyncio
import functools
import logging
import math
import os
import posixpath
import shutil
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import msgspec
from nats.js import JetStreamContext
from nats.js.kv import KeyValue

from mpr_common.events import ChunkSpan, JobCompleted, JobRequested, KeepVerdict, MediaInfo, new_id, now
from mpr_common.jobs import (
    CHUNK_SUFFIX,
    DEFAULT_CHUNK_SECONDS,
    MAX_CHUNKS,
    MAX_JOB_ID,
    JobRequestError,
    normalize_job,
)
from mpr_common.jobstate import JobState
from mpr_common.keeping import decide, judged
from mpr_common.outputs import OutputOwners
from mpr_common.presets import AUDIO_RENDITION, PRESETS
from mpr_common.quality import merge
from mpr_common.s3_client import S3Client
from mpr_common.storage import S3Object, download_file, head_object, upload_file

from ...ffmpeg import FfmpegError, FfmpegKilled, FfmpegTimeout, run_ffmpeg
from ...ffmpeg.argv import bounded_threads
from ...limits import Limits
from ...scene_store import SceneStore
from ...settings import DEFAULT_RELEASE_WINDOW
from ...uploader import STORAGE_ERRORS
from ...workdir import lock
from ..graph.runner import JobGraph
from ..graph.store import PlanStore
from ..rendition.chunks import move_to_cuts, plan_spans
from .parts import (
    CONCAT_LIST,
    CUT_TOLERANCE,
    GRID_SECONDS,
    SHORTEST_CHUNK,
    chunkable_preset,
    concat_list,
    join_args,
    merge_scene_cuts,
)

log = logging.getLogger("mpr.transcoder")

SOUND_SUFFIX = f"-{AUDIO_RENDITION}"
# A transcode's children are named <id>-c<index> and <id>-audio: a longer id runs as one job.
MAX_CHUNKED_ID = MAX_JOB_ID - max(len(CHUNK_SUFFIX.format(index=MAX_CHUNKS)), len(SOUND_SUFFIX))
SOUND_WEIGHT = 0.1  # encoding AAC costs little beside the video
_DELETE_BATCH = 1000


def may_chunk(job: JobRequested) -> bool:
    """Whether a transcode (normalised) may run as chunks, before its source is read."""
    seconds = DEFAULT_CHUNK_SECONDS if job.chunk_seconds is None else job.chunk_seconds
    return (
        job.kind == "transcode"
        and job.parent_id is None
        and seconds > 0
        and job.start is None
        and job.end is None
        # burnt-in subtitles are drawn at each frame's time, which a chunk restarts from 0
        and job.burn_subtitles is None
        and len(job.job_id) <= MAX_CHUNKED_ID
        and chunkable_preset(PRESETS[job.preset or ""])
    )


def transcode_spans(job: JobRequested, info: MediaInfo) -> list[ChunkSpan]:
    """The video chunks of a transcode (normalised) on the grid; none when it runs as one job."""
    return _grid_spans(job, info)[0]


def _grid_spans(job: JobRequested, info: MediaInfo) -> tuple[list[ChunkSpan], float]:
    """:func:`transcode_spans`, and the length of a chunk on the grid."""
    if not may_chunk(job) or info.video_codec is None or not info.duration:
        return [], 0.0
    seconds = DEFAULT_CHUNK_SECONDS if job.chunk_seconds is None else job.chunk_seconds
    # Chunks of equal length, the first as well: longer ones when the source would need more than
    # MAX_CHUNKS of them.
    per = max(
        math.ceil(seconds / GRID_SECONDS - 1e-9), math.ceil(info.duration / GRID_SECONDS / MAX_CHUNKS), 1
    )
    spans = plan_spans(info.duration, GRID_SECONDS, per * GRID_SECONDS, first_chunk_units=per)
    return (spans if len(spans) > 1 else []), per * GRID_SECONDS


class TranscodePlan(msgspec.Struct, kw_only=True, dict=True):
    """A chunked transcode's children: a video chunk per span, and the sound when the source has one."""

    v: int = 1
    transcode: JobRequested  # normalised
    spans: list[ChunkSpan]
    sound: bool
    duration: float  # the source's, as probed when the plan was made
    # the chunk boundaries moved from the grid to a scene cut (seconds of the source), in order
    at_cuts: list[float] = msgspec.field(default_factory=list)
    # the version of the source the plan was made on (its ETag, size): the one its join keeps scenes of
    source_etag: str = ""
    source_size: int = 0
    planned_at: float = msgspec.field(default_factory=now)
    nonce: str = msgspec.field(default_factory=new_id)

    @property
    def parent(self) -> JobRequested:
        return self.transcode

    @property
    def parts_prefix(self) -> str:
        """Where the children write: beside the output, in a folder named after it."""
        assert self.transcode.output_key is not None
        return posixpath.splitext(self.transcode.output_key)[0] + ".parts/"

    @property
    def extension(self) -> str:
        assert self.transcode.output_key is not None
        return posixpath.splitext(self.transcode.output_key)[1]

    @property
    def total_weight(self) -> float:
        """The children's weights before they are made shares of 1: the chunks' add up to 1."""
        return 1.0 + (SOUND_WEIGHT if self.sound else 0.0)

    def _child(self, suffix: str, name: str, weight: float, **fields: object) -> JobRequested:
        t = self.transcode
        return JobRequested(
            job_id=t.job_id + suffix,
            kind="transcode",
            source_key=t.source_key,
            source_bucket=t.source_bucket,
            output_key=self.parts_prefix + name + self.extension,
            output_bucket=t.output_bucket,
            requested_by=t.requested_by,
            requested_at=t.requested_at,  # a child is the same job each time the plan names it
            parent_id=t.job_id,
            preset=t.preset,
            priority=t.priority,
            weight=round(weight / self.total_weight, 6),  # shares of 1: see .graph.releasing
            **fields,  # type: ignore[arg-type]
        )

    @property
    def chunks(self) -> list[JobRequested]:
        return [
            self._child(
                CHUNK_SUFFIX.format(index=span.index),
                f"c{span.index:04d}",
                _share(span, self.duration),
                chunk=span,
                watermark=self.transcode.watermark,  # every chunk's picture marked as the whole one's
            )
            for span in self.spans
        ]

    @functools.cached_property
    def jobs(self) -> list[JobRequested]:
        """The sound first (the longest child: started first, the graph's tail is short), then the
        chunks in order. Made once per plan (never changed), read-only to callers."""
        sound = self._child(
            SOUND_SUFFIX,
            AUDIO_RENDITION,
            SOUND_WEIGHT,
            rendition=AUDIO_RENDITION,
            loudnorm=self.transcode.loudnorm,
        )
        return [sound, *self.chunks] if self.sound else self.chunks

    def child(self, job_id: str) -> JobRequested | None:
        return self._by_id.get(job_id)

    @functools.cached_property
    def _by_id(self) -> dict[str, JobRequested]:
        return {c.job_id: c for c in self.jobs}

    def msg_id(self, child: JobRequested) -> str:
        return f"{child.job_id}.{self.nonce}"


def _share(span: ChunkSpan, duration: float) -> float:
    end = duration if span.end is None else min(span.end, duration)
    return max(0.0, end - span.start) / duration if duration > 0 else 1.0


def plan_transcode(transcode: JobRequested, info: MediaInfo, scenes: Sequence[float] = ()) -> TranscodePlan:
    """The children of a chunked transcode; with its source's ``scenes`` (cuts, in seconds), its chunk
    boundaries moved to the cuts near them (:func:`~..rendition.chunks.move_to_cuts`)."""
    spans, length = _grid_spans(transcode, info)
    if not spans or info.duration is None:
        raise JobRequestError(f"transcode {transcode.job_id} is not chunked")
    moved: list[float] = []
    if scenes:
        spans, moved = move_to_cuts(
            spans, scenes, info.duration, tolerance=CUT_TOLERANCE * length, floor=SHORTEST_CHUNK * length
        )
    return TranscodePlan(
        transcode=transcode,
        spans=spans,
        sound=info.audio_codec is not None,
        duration=info.duration,
        at_cuts=moved,
    )


_SAME = ("kind", "source_key", "source_bucket", "output_key", "output_bucket", "preset", "rendition")


def as_planned(job: JobRequested, plan: TranscodePlan) -> JobRequested:
    planned = plan.child(job.job_id)
    if planned is None:
        raise JobRequestError(f"job {job.job_id} is not a child of transcode {plan.transcode.job_id}")
    if any(getattr(job, f) != getattr(planned, f) for f in _SAME if getattr(job, f) is not None) or (
        job.chunk != planned.chunk
    ):
        raise JobRequestError(f"job {job.job_id} differs from the child its transcode planned")
    return planned


class TranscodeStore(PlanStore[TranscodePlan]):
    """Chunked transcodes' plans, beside packages' in the ``mpr-packages`` KV bucket (job ids are
    unique: a key is one job's)."""

    def __init__(self, kv: KeyValue) -> None:
        super().__init__(kv, TranscodePlan)


class TranscodeGraph(JobGraph[TranscodePlan]):
    noun = "transcode"
    child_kinds = ("transcode",)

    def __init__(
        self,
        js: JetStreamContext,
        s3: S3Client,
        job_state: JobState,
        store: TranscodeStore,
        bucket_out: str,
        instance: str,
        owners: OutputOwners | None = None,
        *,
        workdir: str | Path,
        limits: Limits,
        window: int = DEFAULT_RELEASE_WINDOW,
        bucket_in: str | None = None,
        scenes: SceneStore | None = None,
    ) -> None:
        super().__init__(js, s3, job_state, store, bucket_out, instance, owners, window)
        self.workdir = Path(workdir)
        self.limits = limits
        self.bucket_in = bucket_in  # where sources are when a job names no bucket (its keep_if reads it)
        self.scenes = scenes  # None: chunks are cut on the grid

    def may_fan_out(self, parent: JobRequested) -> bool:
        try:
            return may_chunk(normalize_job(parent))
        except JobRequestError:
            return False  # it runs as one job, which fails with the reason

    def runs_as_graph(self, parent: JobRequested, info: MediaInfo) -> bool:
        return bool(transcode_spans(parent, info))

    def make_plan(self, parent: JobRequested, info: MediaInfo) -> TranscodePlan:
        return plan_transcode(parent, info)

    async def plan_graph(self, parent: JobRequested, info: MediaInfo) -> TranscodePlan:
        """The plan, its chunks cut at the source's scene cuts near the grid when a job on this version
        of the source has detected them (none is detected here: that would read the whole source before
        any chunk starts)."""
        head, scenes = await self._known_scenes(parent)
        plan = plan_transcode(parent, info, scenes)
        if head is not None:
            plan = msgspec.structs.replace(plan, source_etag=head.etag, source_size=head.size)
        if plan.at_cuts:
            log.info(
                "transcode: %d of %d chunk boundaries moved to scene cuts (%s s)",
                len(plan.at_cuts),
                len(plan.spans) - 1,
                ", ".join(f"{c:g}" for c in plan.at_cuts),
                extra={"job_id": parent.job_id},
            )
        return plan

    async def _known_scenes(self, t: JobRequested) -> tuple[S3Object | None, list[float]]:
        """The source's version (None: unread, or no scenes to keep) and its kept scenes."""
        bucket = t.source_bucket or self.bucket_in
        if self.scenes is None or bucket is None:
            return None, []
        try:
            head = await asyncio.to_thread(head_object, t.source_key, bucket, client=self.s3)
        except STORAGE_ERRORS as exc:  # a shortcut: the chunks stay on the grid
            log.warning("source unread for its scenes: %s", exc, extra={"job_id": t.job_id})
            return None, []
        return head, await self.scenes.known(bucket, t.source_key, head.etag, head.size) or []

    async def keep_scenes(self, plan: TranscodePlan, done: dict[str, JobCompleted]) -> None:
        """Keep the cuts the chunks found as the source's scenes, when every chunk looked (one that read
        them kept, or ran without a store, found none: a partial list is never kept). Of the version
        the plan was made on: a source overwritten since is another version, detected again."""
        t = plan.transcode
        bucket = t.source_bucket or self.bucket_in
        if self.scenes is None or bucket is None or not plan.source_etag:
            return
        found: list[tuple[ChunkSpan, list[float]]] = []
        for child in plan.chunks:
            cuts = done[child.job_id].scene_cuts
            if child.chunk is None or cuts is None:
                return
            found.append((child.chunk, cuts))
        merged = merge_scene_cuts(found, plan.duration)
        await self.scenes.offer(bucket, t.source_key, plan.source_etag, plan.source_size, merged)

    def as_planned(self, job: JobRequested, plan: TranscodePlan) -> JobRequested:
        return as_planned(job, plan)

    def child_name(self, child: JobRequested) -> str:
        return f"chunk {child.chunk.index}" if child.chunk is not None else "the sound"

    async def complete(self, plan: TranscodePlan, done: dict[str, JobCompleted]) -> JobCompleted:
        """The join: the parts downloaded, copied into one file, uploaded to the transcode's output key.
        Again on a redelivery: the same parts make the same bytes. A transcode with keep_if is judged
        once, here, on the joined file: not kept, it is not uploaded (the parts go as always)."""
        t = plan.transcode
        assert t.output_key is not None
        bucket = t.output_bucket or self.bucket_out
        self.workdir.mkdir(parents=True, exist_ok=True)
        # A job's dir, locked while the join runs: what a killed worker left is cleaned at start.
        tmp = Path(tempfile.mkdtemp(prefix=f"job-{t.job_id}-join-", dir=self.workdir))
        held = lock(tmp)
        quality = merge([done[c.job_id].quality for c in plan.chunks])
        verdict: KeepVerdict | None = None
        try:
            out = await self._join(plan, done, bucket, tmp)
            size = out.stat().st_size
            if judged(t):
                verdict = decide(
                    t,
                    source_size=await self._source_size(t),
                    source_seconds=plan.duration,
                    output_size=size,
                    output_seconds=plan.duration,
                    quality=quality,
                )
            if verdict is None or verdict.kept:
                await asyncio.to_thread(upload_file, out, t.output_key, bucket, client=self.s3)
            await self.keep_scenes(plan, done)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
            os.close(held)
        kept = verdict is None or verdict.kept
        sound = next((done[c.job_id] for c in plan.jobs if c.chunk is None), None)
        return JobCompleted(
            job_id=t.job_id,
            output_key=t.output_key,
            output_bucket=bucket,
            output_keys=[t.output_key] if kept else [],
            output_size=size if kept else 0,
            duration=plan.duration,
            elapsed=round(max(0.0, time.time() - t.requested_at), 3),
            worker=self.instance,
            loudness=sound.loudness if sound is not None else None,
            quality=quality,
            outcome="kept" if kept else "not_kept",
            keep=verdict,
        )

    async def _source_size(self, t: JobRequested) -> int:
        """The source's bytes now (0, "not known", when it cannot be read: the output is not kept)."""
        try:
            head = await asyncio.to_thread(
                head_object, t.source_key, t.source_bucket or self.bucket_in, client=self.s3
            )
        except STORAGE_ERRORS as exc:
            log.warning("source size unknown for keep_if: %s", exc, extra={"job_id": t.job_id})
            return 0
        return head.size

    async def _join(self, plan: TranscodePlan, done: dict[str, JobCompleted], bucket: str, tmp: Path) -> Path:
        names: list[str] = []
        sound: Path | None = None
        for child in plan.jobs:
            part = done[child.job_id]
            local = tmp / posixpath.basename(part.output_key)
            await asyncio.to_thread(
                download_file, part.output_key, local, part.output_bucket or bucket, client=self.s3
            )
            if child.chunk is None:
                sound = local
            else:
                names.append(local.name)
        listing = tmp / CONCAT_LIST
        listing.write_text(concat_list(names))
        preset = PRESETS[plan.transcode.preset or ""]
        out = tmp / f"output{plan.extension}"
        args = join_args(listing, sound, out, preset.container or "mp4", self.limits.max_output_bytes)
        try:
            await run_ffmpeg(
                bounded_threads(args, self.limits.ffmpeg_threads),
                lambda _: None,
                timeout=self.limits.job_timeout,
                stall_timeout=self.limits.stall_timeout or None,
                max_memory=self.limits.ffmpeg_max_memory or None,
            )
        except (FfmpegKilled, FfmpegTimeout):
            raise  # this machine's trouble: the child's redelivery joins again
        except FfmpegError as exc:  # the parts do not join: never better on a retry
            raise JobRequestError(f"joining the chunks of transcode {plan.transcode.job_id}: {exc}") from None
        return out

    async def completed(self, plan: TranscodePlan, completion: JobCompleted) -> None:
        """The parts go once the transcode has its output (again on a redelivery: nothing left to do)."""
        await self._remove_parts(plan, keep_running=False)

    async def discard(self, plan: TranscodePlan) -> list[str]:
        """A failed or cancelled transcode: its parts go; a child still running keeps its claim until it
        ends (its own end runs this again); a completed child whose part went is marked failed, so that
        a retry runs it again. The transcode keeps its output key, as when it runs as one job."""
        return await self._remove_parts(plan, keep_running=True)

    async def _remove_parts(self, plan: TranscodePlan, *, keep_running: bool) -> list[str]:
        t = plan.transcode
        bucket = t.output_bucket or self.bucket_out
        owners = await self.owners()
        doomed: list[str] = []
        claims: list[tuple[str, str]] = []
        emptied: list[str] = []
        for child in await self.releaser.released(plan):  # the others never ran
            assert child.output_key is not None
            owner = await owners.owner(bucket, child.output_key)
            if owner not in (None, child.job_id):
                continue  # never this child's (it was refused its output)
            state = await self.job_state.get(child.job_id)
            doomed.append(child.output_key)
            if owner == child.job_id and (state is not None or not keep_running):
                claims.append((child.output_key, child.job_id))
            if keep_running and isinstance(state, JobCompleted):
                emptied.append(child.job_id)
        try:
            for i in range(0, len(doomed), _DELETE_BATCH):
                await asyncio.to_thread(self._delete, bucket, doomed[i : i + _DELETE_BATCH])
        except (*STORAGE_ERRORS, RuntimeError) as exc:  # kept, and claimed, until a later run deletes them
            log.warning("transcode parts kept: %s", exc, extra={"job_id": t.job_id})
            return []
        for job_id in emptied:
            await self.job_state.failed(job_id)
        for key, job_id in claims:
            await owners.release(bucket, key, job_id)
        return doomed
