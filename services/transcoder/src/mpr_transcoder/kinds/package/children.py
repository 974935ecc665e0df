"""Adaptive packages as job graphs: a package job becomes one ``rendition`` child per rung of its ladder
that the source can fill (never upscaled), one audio rendition per audio track (every audio stream of
the source, or those of the languages the package names: :func:`mpr_common.audio_tracks.select_audio`),
one subtitle rendition per text subtitle track (the source's subtitle streams, the sidecars beside it,
the files the package names: :func:`mpr_common.subtitles.select_subtitles`), and a ``storyboard``
child when asked for.

A source longer than one chunk is encoded in chunks (``chunk_seconds``, :data:`DEFAULT_CHUNK_SECONDS`):
each video rung becomes one child per chunk of the source (all rungs cut at the same segment boundaries,
see :func:`~mpr_transcoder.kinds.rendition.chunks.plan_chunks`), so one title runs on every transcoder
at once and its first seconds are ready long before its last. The sound stays one child over the whole
source: a join in AAC would click. An AV1 rung is chunked only when a GOP is a whole number of frames at
the source's rate (:func:`chunked_rung`); otherwise it is one child over the whole source, and the plan
notes why. Children are published chunk by chunk (every rung's first chunk, then
every rung's second, ...), so the title becomes playable in order.

The plan is made once, by the transcoder that takes the package, and kept in the ``mpr-packages`` KV
bucket: a redelivered package reuses it, and a child job is run only as its package's plan describes it
(a child published by anyone else, or altered, fails as invalid)."""

from __future__ import annotations

import functools
import posixpath

import msgspec
from nats.js.kv import KeyValue

from mpr_common.audio_tracks import select_audio, source_audio
from mpr_common.events import (
    AudioStream,
    ChunkSpan,
    JobRequested,
    LadderChoice,
    MediaInfo,
    RungSettings,
    SubtitleFile,
    new_id,
    now,
)
from mpr_common.jobs import CHUNK_SUFFIX, DEFAULT_CHUNK_SECONDS, JobRequestError
from mpr_common.presets import DEFAULT_PRESET, PRESETS, STORYBOARD_VTT, Preset, Rung
from mpr_common.subtitles import is_subtitle_rendition, select_subtitles

from ..graph.store import PlanStore
from ..ladder import ladder_rungs
from ..rendition.chunks import plan_chunks
from ..rendition.cmaf import chunk_playlist_name, key_frame_interval_on_grid

# Codecs whose key frames follow a fixed interval only: FFmpeg 5.1's libsvtav1 ignores forced key frames,
# so a chunk's key frames are every gop_frames frames from its own first frame. That is the title's GOP
# grid when a GOP is a whole number of frames (chunks start on segment boundaries, whole GOPs); at
# 30000/1001 fps it parts from it, and such a rung is encoded whole.
FIXED_KEY_INTERVAL_CODECS = frozenset({"libsvtav1"})
AUDIO_WEIGHT = 0.3  # encoding AAC costs little beside any video rung (each audio track)
SUBTITLE_WEIGHT = 0.05  # converting a subtitle track to WebVTT reads its packets, decodes nothing
STORYBOARD_WEIGHT = 0.3


class PackagePlan(msgspec.Struct, kw_only=True, dict=True):
    """A package's children, kept compact: the children that run whole (the sound, a storyboard, the
    rungs of an unchunked package) are listed; a chunked rung is kept once (``chunked``, without a chunk)
    with the chunks every chunked rung is cut into (``spans``). :attr:`jobs` lists every child."""

    v: int = 1
    package: JobRequested  # normalised
    children: list[JobRequested]
    planned_at: float = msgspec.field(default_factory=now)
    # In the children's Nats-Msg-Id: nobody can guess it to publish a look-alike that de-duplication
    # would keep in place of the real child.
    nonce: str = msgspec.field(default_factory=new_id)
    chunked: list[JobRequested] = msgspec.field(default_factory=list)
    spans: list[ChunkSpan] = msgspec.field(default_factory=list)
    duration: float | None = None  # the source's, as probed when the plan was made
    # what the plan tells of the source: what the package leaves out, a rung it cannot chunk
    notes: list[str] = msgspec.field(default_factory=list)
    # a per-title package: its analysis (each rung's choice and why), made once before the plan
    ladder: LadderChoice | None = None

    @property
    def parent(self) -> JobRequested:
        return self.package

    @functools.cached_property
    def jobs(self) -> list[JobRequested]:
        """Every child, in the order they are published: the sound first (needed to play anything), then
        chunk by chunk, every rung's first chunk before any rung's second; the subtitle tracks right after
        the first chunks (a package plays without them, and they are soon done); the rest last. Made once
        per plan (a plan is never changed: a new one is a copy), read-only to callers."""
        chunks = [chunk_child(rung, span, self.duration) for span in self.spans for rung in self.chunked]
        whole = [c for c in self.children if c.kind == "rendition" and not is_subtitle(c)]
        subtitles = [c for c in self.children if is_subtitle(c)]
        first = len(self.chunked)
        return [
            *whole,
            *chunks[:first],
            *subtitles,
            *chunks[first:],
            *(c for c in self.children if c.kind != "rendition"),
        ]

    @property
    def chunked_names(self) -> list[str]:
        return [r.rendition or "" for r in self.chunked]

    @property
    def folder(self) -> str:
        assert self.package.output_key is not None
        return posixpath.dirname(self.package.output_key)

    def msg_id(self, child: JobRequested) -> str:
        return f"{child.job_id}.{self.nonce}"

    def child(self, job_id: str) -> JobRequested | None:
        return self._by_id.get(job_id)

    @functools.cached_property
    def _by_id(self) -> dict[str, JobRequested]:
        return {c.job_id: c for c in self.jobs}

    def chunks_of(self, name: str) -> list[JobRequested]:
        """The chunk children of the chunked rung ``name``, in order."""
        rung = next((r for r in self.chunked if r.rendition == name), None)
        return [] if rung is None else [chunk_child(rung, span, self.duration) for span in self.spans]


def is_subtitle(child: JobRequested) -> bool:
    """Whether the child makes a subtitle track."""
    return child.kind == "rendition" and is_subtitle_rendition(child.rendition)


def child_id(package_id: str, name: str) -> str:
    return f"{package_id}-{name}"


def chunk_child(rung: JobRequested, span: ChunkSpan, duration: float | None) -> JobRequested:
    """The child that encodes chunk ``span`` of a chunked rung (``rung``: the rung's child as a whole) of
    a source of ``duration`` seconds."""
    assert rung.output_key is not None and rung.rendition is not None and rung.parent_id is not None
    return msgspec.structs.replace(
        rung,
        job_id=child_id(rung.parent_id, rung.rendition) + CHUNK_SUFFIX.format(index=span.index),
        output_key=posixpath.join(
            posixpath.dirname(rung.output_key), chunk_playlist_name(rung.rendition, span.index)
        ),
        weight=round(rung.weight * span_share(span, duration), 6),
        chunk=span,
    )


def span_share(span: ChunkSpan, duration: float | None) -> float:
    """A chunk's share of its rung's work: its length over the source's."""
    if not duration or duration <= 0:
        return 1.0
    end = duration if span.end is None else min(span.end, duration)
    return max(0.0, end - span.start) / duration


def chunked_rung(rung: Rung, preset: Preset, info: MediaInfo) -> bool:
    """Whether a video rung of a chunked package is cut into chunks: any rung whose encoder takes forced
    key frames; one keyed by a fixed interval only when that interval keeps the title's GOP grid."""
    return rung.video_codec not in FIXED_KEY_INTERVAL_CODECS or key_frame_interval_on_grid(preset, info)


def whole_rungs_note(names: list[str], preset: Preset, info: MediaInfo) -> str:
    """Why the rungs ``names`` of a chunked package are encoded whole (see :func:`chunked_rung`)."""
    gop = preset.gop_seconds or 0.0
    if info.fps:
        why = f"at {info.fps:.3f} fps a {gop:g} s GOP is {gop * info.fps:.2f} frames, not a whole number"
    else:
        why = "the source's frame rate is unknown"
    return (
        f"rungs {', '.join(names)} encoded whole, not in chunks: {why}, and their encoder places key "
        "frames at a fixed interval only, which chunks would move off the title's key frame grid"
    )


def chunk_spans(package: JobRequested, preset: Preset, info: MediaInfo) -> list[ChunkSpan]:
    """The chunks a package's video rungs are cut into; none (each rung one child) when chunking is
    off, the source's length is unknown, or it would make one chunk only."""
    seconds = DEFAULT_CHUNK_SECONDS if package.chunk_seconds is None else package.chunk_seconds
    if seconds <= 0 or not info.duration or not preset.hls_segment_seconds or not preset.gop_seconds:
        return []
    spans = plan_chunks(info.duration, preset, seconds)
    return spans if len(spans) > 1 else []


def plan_package(
    package: JobRequested,
    info: MediaInfo,
    sidecars: list[SubtitleFile] | None = None,
    ladder: LadderChoice | None = None,
) -> PackagePlan:
    """``package`` must be normalised; ``sidecars`` are the subtitle files found beside its source;
    ``ladder``: a per-title package's analysis (the rungs it keeps, each with its own rate settings).
    Raises :class:`JobRequestError` when the source cannot make one."""
    preset = PRESETS[package.preset or DEFAULT_PRESET["package"]]
    assert package.output_key is not None
    if info.video_codec is None or not info.height:
        raise JobRequestError("a package needs a source with a video stream")
    folder = posixpath.dirname(package.output_key)
    # Heaviest first: the longest child starts first, so the package's tail is short.
    fitting = sorted(ladder_rungs(preset, info), key=lambda r: -r.weight)
    chosen = {c.name: c for c in ladder.rungs} if ladder is not None else {}
    if ladder is not None:
        fitting = [r for r in fitting if r.name in chosen and chosen[r.name].kept]
    # What every child shares with its package; each child replaces what is its own.
    base = JobRequested(
        job_id="",
        kind="rendition",
        source_key=package.source_key,
        source_bucket=package.source_bucket,
        output_bucket=package.output_bucket,
        requested_by=package.requested_by,
        parent_id=package.job_id,
        preset=preset.name,
        priority=package.priority,
    )
    replace = msgspec.structs.replace

    def settings(name: str) -> RungSettings | None:
        c = chosen.get(name)
        if c is None or c.crf is None or c.max_rate is None or c.buf_size is None:
            return None
        return RungSettings(crf=c.crf, max_rate=c.max_rate, buf_size=c.buf_size)

    def rendition(name: str, weight: float, audio: AudioStream | None = None) -> JobRequested:
        return replace(
            base,
            job_id=child_id(package.job_id, name),
            rendition=name,
            output_key=f"{folder}/{name}.m3u8",
            weight=weight,
            # each audio track is normalised on its own
            loudnorm=package.loudnorm and audio is not None,
            audio_stream=audio,
            # every video rung draws the package's watermark, scaled to the rung
            watermark=None if audio is not None else package.watermark,
            # sound and picture encrypted alike (subtitle tracks and storyboards stay clear)
            encryption=package.encryption,
            # a per-title rung's own CRF and caps (every chunk of it copies them)
            rung=None if audio is not None else settings(name),
        )

    spans = chunk_spans(package, preset, info)
    rungs = [rendition(r.name, r.weight) for r in fitting if chunked_rung(r, preset, info)]
    whole = [rendition(r.name, r.weight) for r in fitting if not chunked_rung(r, preset, info)]
    # in the order selected, the default first; first of all when chunked: nothing plays without them
    audios = [
        rendition(t.name, AUDIO_WEIGHT, t.stream)
        for t in select_audio(source_audio(info), package.audio_languages)
    ]
    subtitles, notes = select_subtitles(
        info.subtitle_streams, [*(sidecars or []), *(package.subtitles or [])], package.subtitle_languages
    )
    texts = [
        replace(
            base,
            job_id=child_id(package.job_id, s.name),
            rendition=s.name,
            output_key=f"{folder}/{s.name}.m3u8",
            weight=SUBTITLE_WEIGHT,
            subtitle=s.track,
        )
        for s in subtitles
    ]
    children: list[JobRequested] = (
        [*audios, *whole, *texts]
        if spans
        else [*(rendition(r.name, r.weight) for r in fitting), *audios, *texts]
    )
    if package.storyboard:
        children.append(
            replace(
                base,
                job_id=child_id(package.job_id, "storyboard"),
                kind="storyboard",
                preset=DEFAULT_PRESET["storyboard"],
                output_key=f"{folder}/{STORYBOARD_VTT}",
                weight=STORYBOARD_WEIGHT,
            )
        )
    chunked = rungs if spans else []
    if spans and whole:
        notes = [*notes, whole_rungs_note([w.rendition or "" for w in whole], preset, info)]
    return PackagePlan(
        package=package,
        children=children,
        chunked=chunked,
        spans=spans,
        duration=info.duration,
        notes=notes,
        ladder=ladder,
    )


def as_planned(job: JobRequested, plan: PackagePlan) -> JobRequested:
    """The child as its package's plan describes it; raises :class:`JobRequestError` for a job that claims
    to be a child of the package but is not one of its children as planned."""
    planned = plan.child(job.job_id)
    if planned is None:
        raise JobRequestError(f"job {job.job_id} is not a child of package {plan.package.job_id}")
    fields = ("kind", "source_key", "source_bucket", "output_key", "output_bucket", "preset", "rendition")
    if (
        job.output_key is not None
        and any(getattr(job, f) != getattr(planned, f) for f in fields if getattr(job, f) is not None)
        or (job.chunk is not None and job.chunk != planned.chunk)
    ):
        raise JobRequestError(f"job {job.job_id} differs from the child its package planned")
    return planned


class PackageStore(PlanStore[PackagePlan]):
    """Plans in the ``mpr-packages`` KV bucket, keyed by the package's job id."""

    def __init__(self, kv: KeyValue) -> None:
        super().__init__(kv, PackagePlan)
