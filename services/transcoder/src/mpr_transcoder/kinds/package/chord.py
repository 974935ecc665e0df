"""The package chord: a package as a job graph (:mod:`..graph`, which fans it out into its child jobs,
checks each child before it runs, fails it with a child's reason and stops the others). What is the
package's own: the last child to complete writes the manifests (HLS master playlist, DASH MPD) and
completes the package, and what a failed package wrote is discarded.

A chunked package (:mod:`.children`) is stitched here: a rung's chunks become one rendition whose media
playlist lists each chunk's segments once, in order (:func:`~..rendition.chunks.stitch`). A progressive
one is published as it goes: once the sound and every rung's first chunk are up, the master playlist and
EVENT media playlists over each rung's completed chunks (in order, up to the first missing one) are
written and ``job.playable`` goes out, once; each later completion extends them; the last one ends them
(and, when it was the one the package waited for to be playable, sends ``job.playable`` before its end).
Every write of a package's playlists happens under its publishing lock (:mod:`.publishing`): they only
ever grow.

Every step is idempotent, so a redelivery after a crash repeats it harmlessly: children are published
with their ids as ``Nats-Msg-Id``, the plan is created once (``mpr-packages`` KV), a finished child is
never run again (job-state KV), and manifests are rewritten with the same bytes.

A package owns its manifest names (``master.m3u8``, ``manifest.mpd`` in its folder, claimed in
``mpr-output-owners`` before its children are published), so two packages never share a folder. A package
that fails or is cancelled leaves nothing behind: what its children wrote in its folder is deleted and
their claims and its own are released (see :meth:`Packager.discard`), again each time one of its children
ends afterwards, as a child that was still running may upload until it stops."""

from __future__ import annotations

import asyncio
import logging
import posixpath
import re
import time
from dataclasses import dataclass, field

from botocore.exceptions import BotoCoreError, ClientError
from nats.js import JetStreamContext
from nats.js.errors import KeyWrongLastSequenceError

from mpr_common import subjects as s
from mpr_common.audio_tracks import is_audio_rendition
from mpr_common.bus import publish_event
from mpr_common.content_keys import ContentKeys
from mpr_common.events import JobCompleted, JobPlayable, JobRequested, LadderChoice, MediaInfo, Rendition
from mpr_common.jobs import DEFAULT_PROGRESSIVE, JobRequestError, outcome_id
from mpr_common.jobstate import JobState
from mpr_common.outputs import OutputOwners
from mpr_common.packages import manifest_keys
from mpr_common.per_title import PER_TITLE
from mpr_common.presets import DASH_MANIFEST, DEFAULT_PRESET, MASTER_PLAYLIST, POSTER, PRESETS
from mpr_common.s3_client import S3Client
from mpr_common.subtitles import subtitle_text_file

from ...ffmpeg import FfmpegError
from ...job_errors import ffmpeg_error, storage_error
from ...scene_store import SceneStore
from ...settings import DEFAULT_RELEASE_WINDOW
from ...source_objects import locate
from ...subtitle_sources import find_sidecars
from ...uploader import STORAGE_ERRORS
from ..graph.runner import ChildVerdict, JobGraph
from ..ladder import ladder_rungs
from ..rendition.chunks import stitch
from ..rendition.cmaf import init_name, playlist_name
from .analysis import Analyser
from .children import (
    PackagePlan,
    PackageStore,
    as_planned,
    chunk_playlist_name,
    is_subtitle,
    plan_package,
)
from .encrypted import make_content_key, master_playlist, package_kid, package_mpd, rung_playlist
from .releasing import lead, with_shares

__all__ = ["ChildVerdict", "Packager", "child_files"]

log = logging.getLogger("mpr.transcoder")


_DELETE_BATCH = 1000  # keys one DeleteObjects request takes


def child_files(child: JobRequested) -> tuple[str, re.Pattern[str]]:
    """The name of a child's main output in its package's folder, and the pattern of the other files it
    writes there: a rendition's init segment and media segments (``cmaf``), a storyboard's sheets and
    poster (``storyboard``)."""
    assert child.output_key is not None
    main = posixpath.basename(child.output_key)
    if child.kind == "storyboard":
        return main, re.compile(rf"storyboard_[0-9]+\.jpg|{re.escape(POSTER)}")
    name = child.rendition or ""
    if is_subtitle(child):  # its WebVTT segments and whole file
        assert main == playlist_name(name)
        return main, re.compile(rf"{re.escape(name)}_[0-9]+\.vtt|{re.escape(subtitle_text_file(name))}")
    media = rf"{re.escape(init_name(name))}|{re.escape(name)}_[0-9]+\.m4s"
    if child.chunk is not None:  # and the rung's playlist, which its package writes from its chunks'
        assert main == chunk_playlist_name(name, child.chunk.index)
        return main, re.compile(rf"{media}|{re.escape(playlist_name(name))}")
    assert main == playlist_name(name)
    return main, re.compile(media)


def _claimable(name: str) -> bool:
    """Whether another job could own a file of this name (its output_key): a media segment (.m4s) is
    no job's output."""
    return not name.endswith(".m4s")


@dataclass(frozen=True, slots=True)
class _Folder:
    """A package's folder as a discard found it: the key prefix and the names of the objects under it."""

    prefix: str
    names: set[str]


@dataclass(slots=True)
class _Leftovers:
    """What a discard removes: the keys to delete, the claims (key, job id) to release once they are
    gone, and the completed children whose files go."""

    doomed: list[str] = field(default_factory=list)
    claims: list[tuple[str, str]] = field(default_factory=list)
    emptied: list[str] = field(default_factory=list)


class Packager(JobGraph[PackagePlan]):
    noun = "package"
    child_kinds = ("rendition", "storyboard")

    def __init__(
        self,
        js: JetStreamContext,
        s3: S3Client,
        job_state: JobState,
        store: PackageStore,
        bucket_out: str,
        instance: str,
        owners: OutputOwners | None = None,
        window: int = DEFAULT_RELEASE_WINDOW,
        bucket_in: str | None = None,
        content_keys: ContentKeys | None = None,
        analyser: Analyser | None = None,
        scenes: SceneStore | None = None,
    ) -> None:
        super().__init__(js, s3, job_state, store, bucket_out, instance, owners, window)
        self.bucket_in = bucket_in  # where sources are read by default; None: no sidecar is looked for
        self.content_keys = content_keys  # None: no MPR_KEY_SECRET, an encrypted package is refused
        self.analyser = analyser  # None: a per-title package is refused
        self.scenes = scenes  # None: the analysis detects its source's scenes itself, keeping nothing

    def make_plan(self, parent: JobRequested, info: MediaInfo) -> PackagePlan:
        return with_shares(plan_package(parent, info))

    async def plan_graph(self, parent: JobRequested, info: MediaInfo) -> PackagePlan:
        """The plan, with the subtitle sidecars found beside the source (listed once, here), and a
        per-title package's analysis (run once: a redelivered package takes the plan it made)."""
        ladder = None
        if parent.ladder == PER_TITLE:
            existing = await self.store.get(parent.job_id)
            if existing is not None:  # its key too: a failed package's went with its files
                await make_content_key(self.content_keys, existing, parent.output_bucket or self.bucket_out)
                return existing
            ladder = await self._analyse(parent, info)
        found = []
        if self.bucket_in is not None:  # a failed listing is a storage error: the package is retried
            found = await find_sidecars(self.s3, parent.source_bucket or self.bucket_in, parent.source_key)
        plan = with_shares(plan_package(parent, info, found, ladder))
        await make_content_key(self.content_keys, plan, parent.output_bucket or self.bucket_out)
        for note in plan.notes:
            log.info("package: %s", note, extra={"job_id": parent.job_id})
        return plan

    async def _analyse(self, parent: JobRequested, info: MediaInfo) -> LadderChoice:
        if self.analyser is None:
            raise JobRequestError("this transcoder makes no per-title ladders")
        preset = PRESETS[parent.preset or DEFAULT_PRESET["package"]]
        rungs = ladder_rungs(preset, info)
        if not rungs:
            raise JobRequestError("a package needs a source with a video stream")
        bucket = parent.source_bucket or self.bucket_in or ""
        try:
            head, url = await locate(self.s3, bucket, parent.source_key)
        except (ClientError, BotoCoreError) as exc:
            raise storage_error(exc) from None
        scenes = None
        if self.scenes is not None:  # the source's scenes, detected once for every job on it
            scenes = self.scenes.lookup(
                bucket, parent.source_key, head.etag, head.size, url, self.analyser.workdir
            )
        try:
            ladder = await self.analyser(parent, info, url, preset, rungs, scenes)
        except FfmpegError as exc:
            raise ffmpeg_error(exc, self.analyser.limits) from None
        kept = [r.name for r in ladder.rungs if r.kept]
        log.info(
            "per-title ladder: %s kept of %d rungs, analysed in %.1f s (%s samples)",
            ", ".join(kept),
            len(ladder.rungs),
            ladder.elapsed,
            ladder.spread,
            extra={"job_id": parent.job_id},
        )
        return ladder

    def release_lead(self, plan: PackagePlan) -> int:
        return lead(plan)

    def as_planned(self, job: JobRequested, plan: PackagePlan) -> JobRequested:
        return as_planned(job, plan)

    def claims(self, parent: JobRequested) -> list[str]:
        """A package owns its manifest names: two packages never share a folder."""
        return list(manifest_keys(parent))

    async def grow(self, plan: PackagePlan, done: dict[str, JobCompleted], retry: int) -> None:
        if plan.spans and _progressive(plan.package):
            await self._grow(plan, done, retry)

    async def _grow(self, plan: PackagePlan, done: dict[str, JobCompleted], retry: int) -> None:
        """A progressive package's playlists over what is up, once the sound and every rung's first
        chunk are; ``job.playable`` the first time."""
        whole = [c for c in plan.children if c.kind == "rendition" and not is_subtitle(c)]
        ups = [done[c.job_id] for c in whole if c.job_id in done]
        if any(is_audio_rendition(c.rendition or "") and c.job_id not in done for c in whole):
            return  # a sound track is not up yet; a rung encoded whole (AV1 at 30000/1001 fps) joins once complete
        # the subtitle tracks done so far (the master lists the others once they are)
        ups += [done[c.job_id] for c in plan.children if is_subtitle(c) and c.job_id in done]
        renditions: list[Rendition] = [u.rendition for u in ups if u.rendition is not None]
        bucket = plan.package.output_bucket or self.bucket_out
        kid = await package_kid(self.content_keys, plan)
        playlists = []
        for name in plan.chunked_names:
            prefix = []
            for chunk in plan.chunks_of(name):
                up = done.get(chunk.job_id)
                if up is None or up.rendition is None:
                    break
                prefix.append(up.rendition)
            if not prefix:
                return
            rung = _stitched(name, prefix, plan.package.job_id)
            renditions.append(rung)
            playlists.append(
                (posixpath.join(plan.folder, rung.playlist), rung_playlist(plan, rung, ended=False, kid=kid))
            )
        master_key = posixpath.join(plan.folder, MASTER_PLAYLIST)
        for key, text in [*playlists, (master_key, master_playlist(plan, renditions, kid))]:
            await asyncio.to_thread(self._put, bucket, key, text.encode())
        await self._playable(plan, master_key, bucket, retry)

    async def ending(self, plan: PackagePlan, completion: JobCompleted, retry: int) -> None:
        """A progressive package whose last child was the one it waited for to be playable (the sound of
        a short title, finished after every chunk) was never announced playable: it is, now, before its
        end, so that every progressive package has its ``job.playable`` (and ``playable_url``)."""
        if plan.spans and _progressive(plan.package):
            bucket = completion.output_bucket or plan.package.output_bucket or self.bucket_out
            await self._playable(plan, completion.output_key, bucket, retry)

    async def _playable(self, plan: PackagePlan, master_key: str, bucket: str, retry: int) -> None:
        """``job.playable``, once per request generation: the first writer to create its marker sends it."""
        marker = f"{plan.package.job_id}.playable" + (f".r{retry}" if retry else "")
        try:
            await self.store.kv.create(marker, b"1")
        except KeyWrongLastSequenceError:
            return
        event = JobPlayable(
            job_id=plan.package.job_id, output_key=master_key, output_bucket=bucket, retry=retry
        )
        await publish_event(
            self.js, s.JOB_PLAYABLE, event, msg_id=outcome_id("playable", event.job_id, retry)
        )
        log.info("package playable", extra={"job_id": event.job_id})

    async def discard(self, plan: PackagePlan) -> list[str]:
        """Delete what a failed or cancelled package wrote in its folder and release its claims; returns
        the keys deleted. Idempotent (a redelivery, or every child that ends after its package, runs it
        again) and limited to the package's own files: a child's files go only while the child owns
        its main output (its segments also once an earlier run of this released it), a file another job
        may own only while no other job does, and a claim is released only from this package's jobs,
        a child's once it has ended. A completed child whose files went is marked failed, so that a
        retry of the package runs it again."""
        package = plan.package
        bucket = package.output_bucket or self.bucket_out
        owners = await self.owners()
        prefix = f"{plan.folder}/" if plan.folder else ""
        try:
            names = set(await asyncio.to_thread(self._names_in, bucket, prefix))
        except STORAGE_ERRORS as exc:  # the package has ended all the same; its claims are kept
            log.warning(
                "package not discarded: listing %s failed: %s", prefix, exc, extra={"job_id": package.job_id}
            )
            return []
        left = _Leftovers()
        for child in await self.releaser.released(plan):  # the others never ran
            await self._child_leftovers(left, owners, bucket, _Folder(prefix, names), child)
        await self._package_leftovers(left, owners, bucket, names, package)
        try:
            for i in range(0, len(left.doomed), _DELETE_BATCH):
                await asyncio.to_thread(self._delete, bucket, left.doomed[i : i + _DELETE_BATCH])
        except (*STORAGE_ERRORS, RuntimeError) as exc:  # kept, and claimed, until a later run deletes them
            log.warning("package not discarded: %s", exc, extra={"job_id": package.job_id})
            return []
        for job_id in left.emptied:
            await self.job_state.failed(job_id)
        for key, job_id in left.claims:
            await owners.release(bucket, key, job_id)
        if package.encryption is not None and self.content_keys is not None:
            # What it encrypted is gone: its key goes too (a retry of the package makes a new one).
            await self.content_keys.forget(package.job_id)
        if left.doomed or left.claims:
            log.info(
                "package discarded: %d objects deleted, %d claims released",
                len(left.doomed),
                len(left.claims),
                extra={"job_id": package.job_id},
            )
        return left.doomed

    async def _child_leftovers(
        self, left: _Leftovers, owners: OutputOwners, bucket: str, folder: _Folder, child: JobRequested
    ) -> None:
        """What of ``child`` a discard removes: its files in the package's folder, its claim once it has
        ended; and whether it was a completed child (its files gone, it must run again on a retry)."""
        assert child.output_key is not None
        owner = await owners.owner(bucket, child.output_key)
        if owner not in (None, child.job_id):
            return  # never this child's (it was refused its output): nothing of it to delete
        state = await self.job_state.get(child.job_id)
        main, others = child_files(child)
        mine = [n for n in folder.names if (n == main and owner == child.job_id) or others.fullmatch(n)]
        for n in mine:
            key = folder.prefix + n
            # A file another job could own (any but a media segment) goes only while no other job owns it.
            if n == main or not _claimable(n) or await owners.owner(bucket, key) in (None, child.job_id):
                left.doomed.append(key)
        # A child still running keeps its claim (and so its playlist's name) until it ends: its own
        # end runs this again, which deletes what it wrote meanwhile and releases it then.
        if owner == child.job_id and state is not None:
            left.claims.append((child.output_key, child.job_id))
        if mine and isinstance(state, JobCompleted):
            left.emptied.append(child.job_id)

    async def _package_leftovers(
        self, left: _Leftovers, owners: OutputOwners, bucket: str, names: set[str], package: JobRequested
    ) -> None:
        """The package's own manifests and claims (its manifest names, its output key), those it still
        owns."""
        assert package.output_key is not None
        manifests = manifest_keys(package)
        for key in dict.fromkeys([*manifests, package.output_key]):
            if await owners.owner(bucket, key) != package.job_id:
                continue
            if key in manifests and posixpath.basename(key) in names:
                left.doomed.append(key)
            left.claims.append((key, package.job_id))

    def _names_in(self, bucket: str, prefix: str) -> list[str]:
        """Names of the objects directly under ``prefix`` (not in folders below it)."""
        names: list[str] = []
        pages = self.s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix, Delimiter="/")
        for page in pages:
            names += [o["Key"][len(prefix) :] for o in page.get("Contents", [])]
        return names

    async def complete(self, plan: PackagePlan, done: dict[str, JobCompleted]) -> JobCompleted:
        package = plan.package
        bucket = package.output_bucket or self.bucket_out
        folder = plan.folder
        whole = [done[c.job_id] for c in plan.children]
        renditions = [c.rendition for c in whole if c.rendition is not None]
        keys = [k for c in whole for k in (c.output_keys or [c.output_key])]
        chunk_playlists: list[str] = []
        writes: list[tuple[str, str]] = []
        kid = await package_kid(self.content_keys, plan)
        for name in plan.chunked_names:
            chunks = [done[c.job_id] for c in plan.chunks_of(name)]
            rung = _stitched(name, [c.rendition for c in chunks if c.rendition is not None], package.job_id)
            renditions.append(rung)
            playlist_key = posixpath.join(folder, rung.playlist)
            writes.append((playlist_key, rung_playlist(plan, rung, ended=True, kid=kid)))
            chunk_playlists += [c.output_key for c in chunks]
            keys += [k for c in chunks for k in c.output_keys if k != c.output_key] + [playlist_key]
        mpd_key = posixpath.join(folder, DASH_MANIFEST)
        master_key = posixpath.join(folder, MASTER_PLAYLIST)
        mpd = package_mpd(plan, renditions, kid)  # None: aes-128, which DASH has no scheme for
        if mpd is not None:
            writes.append((mpd_key, mpd))
        writes.append((master_key, master_playlist(plan, renditions, kid)))
        for key, text in writes:  # after every child's media: the package appears whole
            await asyncio.to_thread(self._put, bucket, key, text.encode())
        if chunk_playlists:  # each chunk's own playlist: its rung's lists its segments now
            try:
                await asyncio.to_thread(self._delete, bucket, chunk_playlists)
            except (*STORAGE_ERRORS, RuntimeError) as exc:
                log.warning("chunk playlists kept: %s", exc, extra={"job_id": package.job_id})
        durations = [sum(r.segments) for r in renditions if r.segments]
        loudness = next((c.loudness for c in whole if c.loudness is not None), None)
        children = list(done.values())
        qualities = {r.name: r.quality for r in renditions if r.quality is not None}
        return JobCompleted(
            job_id=package.job_id,
            output_key=master_key,
            output_bucket=bucket,
            output_keys=list(dict.fromkeys([*keys, *(k for k, _ in writes if k in (mpd_key, master_key))])),
            output_size=sum(c.output_size for c in children) + sum(len(t.encode()) for _, t in writes),
            duration=max(durations) if durations else None,
            elapsed=round(max(0.0, time.time() - package.requested_at), 3),
            worker=self.instance,
            loudness=loudness,
            rendition_quality=qualities,
            chosen_ladder=plan.ladder,
        )


def _progressive(package: JobRequested) -> bool:
    return DEFAULT_PROGRESSIVE if package.progressive is None else package.progressive


def _stitched(name: str, chunks: list[Rendition], package_id: str) -> Rendition:
    """A rung's rendition from its chunks' (in order); a chunk that does not fit fails the package."""
    try:
        return stitch(chunks)
    except ValueError as exc:
        raise JobRequestError(f"rendition {name} of package {package_id}: {exc}") from None
