"""What every job kind is given and gives back: the :class:`JobContext` it is planned from, the
:class:`Work` it plans (its FFmpeg steps and what they leave), and loudness normalisation's first pass,
which several kinds run before their encode."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

from mpr_common.content_keys import PackageKey
from mpr_common.events import JobRequested, Loudness, MediaInfo, Quality, Rendition
from mpr_common.presets import Preset

from ..ffmpeg.filtergraph import WatermarkSource
from ..job_errors import JobError
from ..limits import Limits
from ..loudness import OUTPUT_RATE, LoudnessError, SilentAudio, loudnorm_filter, measure_loudness
from ..scene_store import SceneLookup
from ..steps import StepRunner
from ..subtitle_sources import SubtitleInput


@dataclass(frozen=True, slots=True)
class JobContext:
    """One job's plan inputs: the job (normalised), its preset, a presigned URL of its source and the
    source's probe, its work dir ``tmp``, the bound on its outputs' size, its limits, its watermark
    (checked and ready to draw: see ``watermarks.prepare_watermark``), the subtitle track it reads
    (``subtitle_sources.prepare_subtitles``) and where its source's scene changes are read (none: the
    kind does without them)."""

    job: JobRequested
    preset: Preset
    url: str
    info: MediaInfo
    tmp: Path
    max_bytes: int
    limits: Limits
    watermark: WatermarkSource | None = None
    subtitles: SubtitleInput | None = None  # the subtitle track it converts or burns in
    sidecars: tuple[SubtitleInput, ...] = ()  # the subtitle files a trim embeds (subtitle_sources)
    content_key: PackageKey | None = None  # an encrypted package's key (its renditions encrypt with it)
    scenes: SceneLookup | None = None  # the source's scene changes, kept per object (..scene_store)

    @property
    def out_dir(self) -> Path:
        """Where the outputs are written: everything in it is uploaded."""
        return self.tmp / "out"


@dataclass(slots=True)
class Work:
    """What one job does in its work dir: ``run(runner)`` runs its FFmpeg step(s) and leaves the outputs
    in ``main.parent`` (all uploaded; ``main`` last, segments while they are written)."""

    main: Path
    expected: float | None
    run: Callable[[StepRunner], Awaitable[None]]
    segment_glob: str | None = None
    check_written: bool = True  # FFmpeg's last command must have written about ``expected`` seconds
    loudness: Loudness | None = None
    rendition: Rendition | None = None
    quality: Quality | None = None  # its video output's, when its encoder measured it (see ..quality)
    # a chunked transcode's video chunk: the scene cuts its detector found in its span (None: not run)
    scene_cuts: list[float] | None = None
    # what the uploader sends of each file instead of the file (an encrypted rendition's): uploader.py
    seal: Callable[[Path], bytes | None] | None = None


def expected_duration(job: JobRequested, info: MediaInfo) -> float | None:
    """Seconds of media the job's output holds: its range of the source, within the source."""
    d, start = info.duration, job.start or 0.0
    if job.end is not None:
        return job.end - start if d is None else min(job.end - start, max(0.0, d - start))
    return None if d is None else max(0.0, d - start)


Encode = Callable[[str | None], Awaitable[None]]


async def with_loudness(ctx: JobContext, work: Work, runner: StepRunner, encode: Encode) -> None:
    """Loudness normalisation's first pass (the first 30 % of the progress), then ``encode`` with its
    filter; ``encode(None)`` when the job does not normalise, or the sound is silent."""
    job, info = ctx.job, ctx.info
    if not job.loudnorm or info.audio_codec is None:  # nothing to normalise
        await encode(None)
        return
    measure = runner.scoped(0.0, 30.0, expected=expected_duration(job, info))
    try:
        work.loudness = await measure_loudness(
            ctx.url,
            measure,
            start=job.start,
            duration=expected_duration(job, info) if job.end else None,
            info=info,
            stream=job.audio_stream.index if job.audio_stream is not None else 0,
        )
    except SilentAudio:  # silence has no loudness to bring to the target: the sound stays as it is
        await encode(None)
        return
    except LoudnessError as exc:
        raise JobError(f"loudness normalisation: {exc}", "source") from None
    rate = (
        OUTPUT_RATE if job.kind == "rendition" else ctx.preset.audio_rate or info.sample_rate or OUTPUT_RATE
    )
    await encode(loudnorm_filter(work.loudness, sample_rate=rate))
