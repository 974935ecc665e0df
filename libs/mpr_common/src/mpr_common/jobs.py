"""Job rules shared by the API (400 on bad input) and transcoders (failed job, never retried).

Pure functions, unit-tested.
"""

from __future__ import annotations

import math
import posixpath
from dataclasses import dataclass

import msgspec

from .audio_tracks import LONGEST_AUDIO_NAME, check_audio_languages, is_audio_rendition
from .content_keys import CENC, CENC_VIDEO_CODECS, ENCRYPTION_METHODS, NOT_YET
from .events import JOB_KINDS, JobRequested, QualityTarget
from .ffmpeg_features import has_libvmaf
from .keeping import check_keep
from .keys import MEDIA_EXTENSIONS, InvalidKeyError, extension, is_media_key, validate_key
from .overlays import PREVIEW_EXTENSIONS, WATERMARK_KINDS, normalize_preview, normalize_watermark
from .per_title import DEFAULT_TARGET, LADDERS, PER_TITLE, check_target
from .presets import AUDIO_RENDITION, DEFAULT_PRESET, MASTER_PLAYLIST, PRESETS, STORYBOARD_VTT, Preset
from .request_errors import JobRequestError as JobRequestError  # raised by every rule of a request
from .settings import S3Settings
from .subtitles import (
    LONGEST_SUBTITLE_NAME,
    check_burn_subtitles,
    check_subtitle_files,
    check_subtitle_languages,
    is_subtitle_rendition,
)

MAX_MEDIA_SECONDS = 24 * 3600.0
MAX_JOB_ID = 64
# Chunked jobs: seconds of source per chunk child by default, and at most this many chunks per rung
# (a longer source gets longer chunks). A chunk child is named <package id>-<rendition>-c<index>, or
# <transcode id>-c<index>. Each chunk pays FFmpeg's start, its seek and the encoder's warm-up again
# (about 0.6 CPU-s beside a 1080p ladder's chunk, docs/benchmarks.md): 20 s keeps that within the
# no-loss bar while a 5-minute package still has 16 chunks per rung (a 4 s first one, then 15).
DEFAULT_CHUNK_SECONDS = 20.0
MAX_CHUNKS = 9999
CHUNK_SUFFIX = "-c{index:04d}"
DEFAULT_PROGRESSIVE = True
CHUNKED_KINDS = ("package", "transcode")
# A package's children are named <package id>-<rendition>[-c<index>]: the package's id leaves room for
# the longest (an audio rendition is never chunked).
MAX_PACKAGE_ID = (
    MAX_JOB_ID
    - 1
    - max(
        len(LONGEST_AUDIO_NAME),
        len(LONGEST_SUBTITLE_NAME),
        len(CHUNK_SUFFIX.format(index=MAX_CHUNKS))
        + max(
            len(n)
            for n in [AUDIO_RENDITION, "storyboard", *(r.name for p in PRESETS.values() for r in p.ladder)]
        ),
    )
)
LOUDNORM_KINDS = ("audio", "transcode", "package", "rendition")
CHILD_KINDS = ("rendition", "storyboard")
# The kinds whose jobs may run as a job graph (a parent of child jobs).
GRAPH_KINDS = ("package", "transcode")
# The kinds a job graph's child may be: a package's children, and a chunked transcode's parts (a video
# chunk, with ``chunk``; the sound, ``rendition`` AUDIO_RENDITION), which are transcode jobs of their own.
GRAPH_CHILD_KINDS = (*CHILD_KINDS, "transcode")
CHILD_ONLY = (
    "parent_id is set only on a package's child jobs, which only the transcoders publish (mpr.jobs.child)"
)
_JOB_ID_OK = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_")


def _check_time(name: str, value: float | None) -> None:
    if value is None:
        return
    if not math.isfinite(value) or value < 0 or value > MAX_MEDIA_SECONDS:
        raise JobRequestError(
            f"{name} must be a number of seconds between 0 and {MAX_MEDIA_SECONDS:.0f}", field=name
        )


def default_output_key(source_key: str, job_id: str, preset: Preset, job: JobRequested | None = None) -> str:
    stem = posixpath.splitext(source_key)[0]
    if job is not None and job.kind == "rendition" and job.parent_id and job.rendition:
        return f"{stem}/{job.parent_id}/{job.rendition}.m3u8"
    if preset.ladder:
        return f"{stem}/{job_id}/{MASTER_PLAYLIST}"
    if preset.extension == ".vtt":
        return f"{stem}/{job_id}/{STORYBOARD_VTT}"
    if job is not None and job.kind == "preview":
        return f"{stem}/{job_id}/preview{PREVIEW_EXTENSIONS[0]}"
    if preset.container == "hls":
        return f"{stem}/{job_id}/index.m3u8"
    ext = preset.extension or extension(source_key)
    return f"{stem}/{job_id}/{preset.name}{ext}"


def outcome_id(what: str, job_id: str, retry: int = 0) -> str:
    """The de-duplication id of a job's outcome event (``completed``, ``failed``, ``cancel``): one per
    request generation, so that a retried job's new outcome is not dropped as a duplicate of the last."""
    return f"{what}-{job_id}" if not retry else f"{what}-{job_id}-r{retry}"


def job_identity(job: JobRequested, msg_id: str | None, stream_seq: int) -> JobRequested:
    """The job's id as every consumer sees it: the request's own, else its ``Nats-Msg-Id``, else one
    derived from its stream sequence. A publisher that leaves job_id out still gets one job, whose id
    the catalog and the transcoders agree on."""
    if job.job_id:
        return job
    return msgspec.structs.replace(job, job_id=msg_id or f"js-{stream_seq}")


def normalize_job(job: JobRequested) -> JobRequested:
    """Validate a job request and fill in defaults (preset, output key).

    Raises :class:`JobRequestError` with a message fit for a client.
    """
    if not job.job_id or len(job.job_id) > MAX_JOB_ID or not set(job.job_id) <= _JOB_ID_OK:
        raise JobRequestError(
            f"job_id must be 1-{MAX_JOB_ID} characters of letters, digits, '-' or '_'", field="job_id"
        )
    if job.kind not in JOB_KINDS:
        raise JobRequestError(f"kind must be one of {', '.join(JOB_KINDS)}", field="kind")
    _check_graph(job)
    _check_source(job.source_key)
    preset = _preset_of(job)
    _check_times(job)
    _check_options(job, preset)
    check_keep(job, preset)
    output_key = job.output_key or default_output_key(job.source_key, job.job_id, preset, job)
    _check_output(output_key, preset, job)
    for name, bucket in (("source_bucket", job.source_bucket), ("output_bucket", job.output_bucket)):
        if bucket is not None and not _valid_bucket(bucket):
            raise JobRequestError("bucket names must be 3-63 characters of a-z, 0-9, '.' and '-'", field=name)
    return msgspec.structs.replace(
        job,
        preset=preset.name,
        output_key=output_key,
        watermark=None if job.watermark is None else normalize_watermark(job.watermark),
        preview=normalize_preview(job.preview) if job.kind == "preview" else None,
        audio_languages=check_audio_languages(job.audio_languages),
        subtitles=check_subtitle_files(job.subtitles),
        subtitle_languages=check_subtitle_languages(job.subtitle_languages),
        burn_subtitles=check_burn_subtitles(job.burn_subtitles),
        encryption=check_encryption(job),
        quality_target=_quality_target(job, preset),
    )


def _quality_target(job: JobRequested, preset: Preset) -> QualityTarget | None:
    """A per-title package's target (the default when it names none); refused on any other job, and
    per-title on a ladder x264 does not measure (HEVC and AV1 rungs report no per-frame quality)."""
    if job.ladder is not None and job.ladder not in LADDERS:
        raise JobRequestError(f"ladder must be one of {', '.join(LADDERS)}", field="ladder")
    if job.ladder is not None and job.kind != "package":
        raise JobRequestError("ladder is an option of package jobs", field="ladder")
    if job.ladder != PER_TITLE:
        if job.quality_target is not None:
            raise JobRequestError('quality_target goes with "ladder": "per-title"', field="quality_target")
        return None
    if any(r.video_codec != "libx264" for r in preset.ladder):
        raise JobRequestError(
            f"a per-title ladder needs an H.264 ladder (abr-h264): preset {preset.name!r} has other codecs",
            field="ladder",
        )
    target = job.quality_target or DEFAULT_TARGET
    return check_target(target, has_libvmaf() if target.vmaf is not None else False)


def check_encryption(job: JobRequested) -> str | None:
    """A package's ``encryption`` (and its media renditions'); refused elsewhere, and refused with a
    reason for a method that is not available yet."""
    method = job.encryption
    if method is None:
        return None
    if method in NOT_YET:
        raise JobRequestError(NOT_YET[method], field="encryption")
    if method not in ENCRYPTION_METHODS:
        raise JobRequestError(
            f"encryption must be one of {', '.join(ENCRYPTION_METHODS)}", field="encryption"
        )
    if job.kind == "rendition" and is_subtitle_rendition(job.rendition):
        raise JobRequestError("subtitle tracks are not encrypted", field="encryption")
    if job.kind not in ("package", "rendition"):
        raise JobRequestError("encryption is for package jobs", field="encryption")
    if method == CENC and job.kind == "package":
        preset = _preset_of(job)
        other = sorted({r.video_codec for r in preset.ladder} - set(CENC_VIDEO_CODECS))
        if other:
            raise JobRequestError(
                f"cenc of {', '.join(other)} rungs is not available (preset {preset.name}): "
                'use an H.264 or HEVC ladder, or "aes-128"',
                field="encryption",
            )
    return method


def _check_source(source_key: str) -> None:
    try:
        validate_key(source_key)
    except InvalidKeyError as exc:
        raise JobRequestError(f"source_key: {exc}", field="source_key") from None
    if not is_media_key(source_key):
        raise JobRequestError(
            f"source_key must end with a supported media extension ({', '.join(sorted(MEDIA_EXTENSIONS))})",
            field="source_key",
        )


def _preset_of(job: JobRequested) -> Preset:
    preset_name = job.preset or DEFAULT_PRESET[job.kind]
    preset = PRESETS.get(preset_name)
    if preset is None:
        raise JobRequestError(f"unknown preset {preset_name!r}; see GET /api/presets", field="preset")
    if job.kind not in preset.kinds:
        raise JobRequestError(
            f"preset {preset_name!r} is for {', '.join(preset.kinds)} jobs, not {job.kind}", field="preset"
        )
    return preset


def _check_times(job: JobRequested) -> None:
    _check_time("start", job.start)
    _check_time("end", job.end)
    if job.start is not None and job.end is not None and job.end <= job.start:
        raise JobRequestError("end must be greater than start", field="end")
    if job.kind == "trim" and job.start is None and job.end is None:
        raise JobRequestError("a trim job needs start and/or end", field="start")
    if job.kind == "thumbnail" and job.end is not None:
        raise JobRequestError("a thumbnail job takes start (the frame time), not end", field="end")


def _check_options(job: JobRequested, preset: Preset) -> None:
    if job.loudnorm and preset.audio_codec in (None, "copy"):
        raise JobRequestError(
            f"loudnorm re-encodes the sound: preset {preset.name!r} does not", field="loudnorm"
        )
    if job.kind == "rendition":
        names = [r.name for r in preset.ladder] + [AUDIO_RENDITION]
        if (
            job.rendition not in names
            and not is_audio_rendition(job.rendition)
            and not is_subtitle_rendition(job.rendition)
        ):
            raise JobRequestError(
                f"rendition must be one of {', '.join(names)} (or audio-<language>, subs-<language>) for preset"
                f" {preset.name!r}",
                field="rendition",
            )
    if job.audio_stream is not None and not (job.kind == "rendition" and is_audio_rendition(job.rendition)):
        raise JobRequestError("audio_stream belongs to a package's audio renditions", field="audio_stream")
    if (job.subtitle is not None) != (job.kind == "rendition" and is_subtitle_rendition(job.rendition)):
        raise JobRequestError(
            "subtitle belongs to a package's subtitle renditions, which need one", field="subtitle"
        )
    if job.burn_subtitles is not None and preset.video_codec in (None, "copy"):
        raise JobRequestError(
            f"burning subtitles re-encodes the picture: preset {preset.name!r} does not",
            field="burn_subtitles",
        )
    if job.watermark is not None:
        if job.kind == "rendition" and (
            is_audio_rendition(job.rendition) or is_subtitle_rendition(job.rendition)
        ):
            raise JobRequestError("the audio rendition has no picture to watermark", field="watermark")
        if job.kind == "transcode" and preset.video_codec in (None, "copy"):
            raise JobRequestError(
                f"a watermark re-encodes the picture: preset {preset.name!r} does not", field="watermark"
            )


def _check_output(output_key: str, preset: Preset, job: JobRequested) -> None:
    try:
        validate_key(output_key)
    except InvalidKeyError as exc:
        raise JobRequestError(f"output_key: {exc}", field="output_key") from None
    out_ext = extension(output_key)
    if job.kind == "preview":
        if out_ext not in PREVIEW_EXTENSIONS:
            raise JobRequestError(
                f"output_key must end with {' or '.join(PREVIEW_EXTENSIONS)} (the preview's format)",
                field="output_key",
            )
    elif preset.extension:
        if out_ext != preset.extension:
            raise JobRequestError(
                f"output_key must end with {preset.extension} for preset {preset.name!r}", field="output_key"
            )
    elif out_ext not in MEDIA_EXTENSIONS:
        raise JobRequestError("output_key must end with a supported media extension", field="output_key")


def _check_graph(job: JobRequested) -> None:
    """Rules of packages, their children and the options only some kinds take."""
    if job.kind == "package":
        if len(job.job_id) > MAX_PACKAGE_ID:
            raise JobRequestError(
                f"a package's job_id has at most {MAX_PACKAGE_ID} characters (its children add a suffix)",
                field="job_id",
            )
        if job.start is not None or job.end is not None:
            raise JobRequestError(
                "a package takes the whole source: no start or end",
                field="start" if job.start is not None else "end",
            )
    if is_graph_child(job):
        if job.kind == "rendition" and not job.rendition:
            raise JobRequestError("a rendition job names its rendition", field="rendition")
    elif job.kind == "rendition":
        raise JobRequestError("a rendition job is a package's child: submit a package job", field="kind")
    elif job.parent_id is not None or job.rendition is not None:
        raise JobRequestError(
            "parent_id and rendition belong to a package's child jobs",
            field="parent_id" if job.parent_id is not None else "rendition",
        )
    _check_chunking(job)
    _check_picture_options(job)
    if job.loudnorm and job.kind not in LOUDNORM_KINDS:
        raise JobRequestError(f"loudnorm applies to {', '.join(LOUDNORM_KINDS[:3])} jobs", field="loudnorm")
    _check_package_options(job)


def _check_package_options(job: JobRequested) -> None:
    if job.audio_languages is not None and job.kind != "package":
        raise JobRequestError("audio_languages is an option of package jobs", field="audio_languages")
    for name in ("subtitles", "subtitle_languages"):
        if getattr(job, name) is not None and job.kind != "package":
            raise JobRequestError(f"{name} is an option of package jobs", field=name)
    if job.burn_subtitles is not None and job.kind != "transcode":
        raise JobRequestError("burn_subtitles is an option of transcode jobs", field="burn_subtitles")
    if job.rung is not None and not (job.kind == "rendition" and job.parent_id is not None):
        raise JobRequestError("rung belongs to a per-title package's rendition children", field="rung")
    if job.storyboard and job.kind != "package":
        raise JobRequestError(
            "storyboard is an option of package jobs (or submit a storyboard job)", field="storyboard"
        )


def _check_picture_options(job: JobRequested) -> None:
    """watermark and preview belong to the kinds that draw them (their values: :mod:`.overlays`)."""
    if job.watermark is not None and job.kind not in WATERMARK_KINDS:
        raise JobRequestError(
            f"watermark is an option of {', '.join(WATERMARK_KINDS[:2])} jobs", field="watermark"
        )
    if job.preview is not None and job.kind != "preview":
        raise JobRequestError("preview is an option of preview jobs", field="preview")


def is_graph_child(job: JobRequested) -> bool:
    """Whether ``job`` claims to be a child of a job graph (which only the transcoders publish)."""
    if job.parent_id is None or job.kind not in GRAPH_CHILD_KINDS:
        return False
    return job.kind in CHILD_KINDS or job.chunk is not None or job.rendition == AUDIO_RENDITION


def _check_chunking(job: JobRequested) -> None:
    """chunk_seconds and progressive are options of chunked kinds; chunk belongs to a rendition child."""
    if job.chunk_seconds is not None:
        if job.kind not in CHUNKED_KINDS:
            raise JobRequestError(
                f"chunk_seconds is an option of {', '.join(CHUNKED_KINDS)} jobs", field="chunk_seconds"
            )
        _check_time("chunk_seconds", job.chunk_seconds)
    if job.progressive is not None and job.kind != "package":
        raise JobRequestError("progressive is an option of package jobs", field="progressive")
    if job.chunk is not None:
        if job.kind not in ("rendition", "transcode") or job.parent_id is None:
            raise JobRequestError(
                "chunk belongs to a package's rendition child jobs and a chunked transcode's chunks",
                field="chunk",
            )
        c = job.chunk
        if c.index < 0 or c.first_segment < 0 or not math.isfinite(c.start) or c.start < 0:
            raise JobRequestError("chunk: index, first_segment and start must not be negative", field="chunk")
        if c.end is not None and (not math.isfinite(c.end) or c.end <= c.start):
            raise JobRequestError("chunk: end must be after start", field="chunk")


@dataclass(frozen=True, slots=True)
class BucketPolicy:
    """Which buckets a job may read and write: an allow-list from settings, checked by the API (400)
    and again by the transcoder (a failed job) for jobs published straight onto NATS. No bucket a job
    may read is ever written: an output can never overwrite a source."""

    bucket_in: str  # where a job reads when it names no bucket
    bucket_out: str  # … and writes
    sources: frozenset[str]
    outputs: frozenset[str]

    @classmethod
    def of(cls, s3: S3Settings) -> BucketPolicy:
        sources = frozenset({s3.bucket_in, *s3.source_buckets})
        outputs = frozenset({s3.bucket_out, *s3.output_buckets}) - sources
        return cls(s3.bucket_in, s3.bucket_out, sources, outputs)

    def check(self, job: JobRequested) -> None:
        source = job.source_bucket or self.bucket_in
        output = job.output_bucket or self.bucket_out
        if source not in self.sources:
            raise JobRequestError(f"source_bucket {source!r} is not one jobs may read", field="source_bucket")
        if output in self.sources:
            raise JobRequestError(
                f"output_bucket {output!r} holds sources: outputs never overwrite them", field="output_bucket"
            )
        if output not in self.outputs:
            raise JobRequestError(
                f"output_bucket {output!r} is not one jobs may write", field="output_bucket"
            )


def _valid_bucket(name: str) -> bool:
    return 3 <= len(name) <= 63 and all(c.isdigit() or ("a" <= c <= "z") or c in ".-" for c in name)
