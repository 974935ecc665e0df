"""The jobs domain in GraphQL: ``job``, ``jobs``, ``submitJob`` and ``cancelJob``."""

from __future__ import annotations

import enum
from typing import Any

import msgspec
import strawberry
from strawberry.types import Info

from mpr_common import events
from mpr_common.events import JOB_KINDS, JobStatus, JobView

from ..graphql.context import service
from ..graphql.errors import call as _call
from ..graphql.errors import checked as _checked
from ..graphql.errors import maybe as _maybe
from ..graphql.overlays import PreviewInput, WatermarkInput, unset_dropped
from ..graphql.paging import check_page
from ..http.fields import JobId
from .schemas import JobCreate
from .service import JobService


def _jobs(info: Info) -> JobService:
    return service(info, JobService)


@strawberry.type(description="EBU R128 loudness measured on the source, and the target it was normalised to")
class Loudness:
    input_i: float
    input_tp: float
    input_lra: float
    input_thresh: float
    target_offset: float
    target_i: float
    target_tp: float
    target_lra: float


@strawberry.type(
    description="one metric over an output's frames: mean, worst frame, 5th percentile (nearest rank)"
)
class MetricStats:
    mean: float
    min: float
    p5: float


@strawberry.type(
    description="a video output against its source at the output's size: luma PSNR (dB, an identical "
    "frame counts 100) and SSIM; a metric not measured is null"
)
class Quality:
    frames: int
    width: int | None = None
    height: int | None = None
    psnr: MetricStats | None = None
    ssim: MetricStats | None = None
    vmaf: MetricStats | None = None
    method: str = "encoder"

    @classmethod
    def of(cls, q: events.Quality) -> Quality:
        def stats(m: events.MetricStats | None) -> MetricStats | None:
            return MetricStats(mean=m.mean, min=m.min, p5=m.p5) if m is not None else None

        return cls(
            frames=q.frames,
            width=q.width,
            height=q.height,
            psnr=stats(q.psnr),
            ssim=stats(q.ssim),
            vmaf=stats(q.vmaf),
            method=q.method,
        )


@strawberry.type(description="one rung of a per-title ladder: the CRF and caps chosen, or why it was dropped")
class LadderRung:
    name: str
    height: int
    kept: bool
    reason: str
    crf: int | None = None
    max_rate: str | None = None
    buf_size: str | None = None
    predicted_kbps: float | None = None
    predicted_quality: float | None = None


@strawberry.type(description="a per-title package's ladder: its target, its samples and each rung's choice")
class Ladder:
    metric: str
    target: float
    samples: list[float]
    sample_seconds: float
    scenes: list[float]
    spread: str
    elapsed: float
    rungs: list[LadderRung]

    @classmethod
    def of(cls, c: events.LadderChoice) -> Ladder:
        rungs = [
            LadderRung(**{k: v for k, v in msgspec.structs.asdict(r).items() if k != "probes"})
            for r in c.rungs
        ]
        return cls(
            metric=c.metric,
            target=c.target,
            samples=c.samples,
            sample_seconds=c.sample_seconds,
            scenes=c.scenes,
            spread=c.spread,
            elapsed=c.elapsed,
            rungs=rungs,
        )


@strawberry.input(description="a per-title package's target: exactly one of psnr (dB) or ssim")
class QualityTargetInput:
    psnr: float | None = None
    ssim: float | None = None
    vmaf: float | None = None


@strawberry.type(description="a package's video rendition and its quality")
class RenditionQuality:
    rendition: str
    quality: Quality


@strawberry.type(
    description="whether a job's output was kept (keep_if, min_psnr, min_ssim) and the figures it was "
    "judged on: bytes per second of media of the source and the output, mean PSNR (dB) and SSIM, floors"
)
class KeepVerdict:
    keep_if: str
    kept: bool
    source_key: str = ""
    source_bucket: str | None = None
    reason: str | None = None
    detail: str = ""
    source_rate: float | None = None
    output_rate: float | None = None
    output_size: float = 0  # bytes: a Float, as a file may pass GraphQL's 32-bit Int
    psnr: float | None = None
    ssim: float | None = None
    min_psnr: float | None = None
    min_ssim: float | None = None

    @classmethod
    def of(cls, k: events.KeepVerdict) -> KeepVerdict:
        fields = msgspec.structs.asdict(k)
        del fields["v"]
        return cls(**fields)


@strawberry.type
class Job:
    id: str
    kind: str
    status: str
    progress: float
    source_key: str
    output_key: str | None
    output_url: str | None
    preset: str | None
    error: str | None
    attempts: int
    failure_reason: str | None = None
    output_keys: list[str] = strawberry.field(default_factory=list)
    loudnorm: bool = False
    loudness: Loudness | None = None
    parent_id: str | None = None
    rendition: str | None = None
    children: list[str] = strawberry.field(default_factory=list)
    priority: str = "normal"
    retries: int = 0
    template: str | None = None
    rule: str | None = None
    playable_at: float | None = strawberry.field(
        default=None, description="a package: since when it can be played (before it completes, or from then)"
    )
    playable_url: str | None = strawberry.field(
        default=None, description="a package: its master playlist's link, once it can be played"
    )
    quality: Quality | None = strawberry.field(
        default=None, description="its video output's quality against the source, when measured"
    )
    rendition_quality: list[RenditionQuality] = strawberry.field(
        default_factory=list, description="a package: each video rendition's quality"
    )
    outcome: str | None = strawberry.field(
        default=None,
        description='a completed job: "kept", or "not_kept" (judged by keep_if: nothing uploaded)',
    )
    keep: KeepVerdict | None = strawberry.field(default=None, description="the verdict of keep_if and floors")
    chosen_ladder: Ladder | None = strawberry.field(
        default=None, description="a per-title package: the ladder its analysis chose, and why"
    )

    @classmethod
    def of(cls, j: JobView, url: str | None) -> Job:
        return cls(
            failure_reason=j.failure_reason,
            output_keys=j.output_keys,
            loudnorm=j.loudnorm,
            loudness=Loudness(**msgspec.structs.asdict(j.loudness)) if j.loudness else None,
            parent_id=j.parent_id,
            rendition=j.rendition,
            children=j.children,
            priority=j.priority,
            retries=j.retries,
            template=j.template,
            rule=j.rule,
            playable_at=j.playable_at,
            playable_url=j.playable_url,
            quality=Quality.of(j.quality) if j.quality else None,
            rendition_quality=[
                RenditionQuality(rendition=name, quality=Quality.of(q))
                for name, q in j.rendition_quality.items()
            ],
            outcome=j.outcome,
            keep=KeepVerdict.of(j.keep) if j.keep else None,
            chosen_ladder=Ladder.of(j.chosen_ladder) if j.chosen_ladder else None,
            id=j.id,
            kind=j.kind,
            status=j.status,
            progress=j.progress,
            source_key=j.source_key,
            output_key=j.output_key,
            output_url=url,
            preset=j.preset,
            error=j.error,
            attempts=j.attempts,
        )


JobKind: Any = strawberry.enum(enum.Enum("JobKind", {k: k for k in JOB_KINDS}))  # type: ignore[call-overload]


@strawberry.input(description="A subtitle file (SRT or WebVTT) of the source bucket and its language")
class SubtitleFileInput:
    key: str
    language: str


@strawberry.input
class JobInput:
    kind: JobKind
    source_key: str
    output_key: str | None = None
    preset: str | None = None
    start: float | None = None
    end: float | None = None
    job_id: str | None = None
    loudnorm: bool = False
    storyboard: bool = False
    chunk_seconds: float | None = None
    progressive: bool | None = None
    audio_languages: list[str] | None = None
    subtitles: list[SubtitleFileInput] | None = None
    subtitle_languages: list[str] | None = None
    burn_subtitles: str | None = None
    encryption: str | None = None
    watermark: WatermarkInput | None = None
    preview: PreviewInput | None = None
    ladder: str | None = None
    quality_target: QualityTargetInput | None = None
    template: str | None = None
    priority: str | None = None
    keep_if: str | None = None
    min_psnr: float | None = None
    min_ssim: float | None = None


@strawberry.type
class JobsQuery:
    @strawberry.field
    async def job(self, info: Info, id: str) -> Job | None:
        out = await _maybe(_jobs(info).get(_checked(id, JobId, "id")))
        return Job.of(out.job, out.output_url) if out else None

    @strawberry.field
    async def jobs(
        self, info: Info, limit: int = 100, offset: int = 0, status: str | None = None
    ) -> list[Job]:
        check_page(limit, offset)
        wanted: JobStatus | None = _checked(status, JobStatus | None, "status")
        items, _ = await _call(_jobs(info).list(limit, offset, wanted))
        return [Job.of(o.job, o.output_url) for o in items]


@strawberry.type
class JobsMutation:
    @strawberry.mutation
    async def submit_job(self, info: Info, job: JobInput) -> Job:
        fields = {
            "kind": job.kind.value,
            "source_key": job.source_key,
            "output_key": job.output_key,
            "preset": job.preset,
            "start": job.start,
            "end": job.end,
            "job_id": job.job_id,
            "loudnorm": job.loudnorm,
            "storyboard": job.storyboard,
            "chunk_seconds": job.chunk_seconds,
            "progressive": job.progressive,
            "audio_languages": job.audio_languages,
            "subtitles": None if job.subtitles is None else [unset_dropped(f) for f in job.subtitles],
            "subtitle_languages": job.subtitle_languages,
            "burn_subtitles": job.burn_subtitles,
            "encryption": job.encryption,
            "watermark": unset_dropped(job.watermark),
            "preview": unset_dropped(job.preview),
            "ladder": job.ladder,
            "quality_target": unset_dropped(job.quality_target),
            "template": job.template,
            "keep_if": job.keep_if,
            "min_psnr": job.min_psnr,
            "min_ssim": job.min_ssim,
            **({"priority": job.priority} if job.priority else {}),
        }
        body = _checked(fields, JobCreate, "job")  # the same bounds as POST /api/jobs
        out, _ = await _call(_jobs(info).submit(body, requested_by="graphql"))
        return Job.of(out.job, out.output_url)

    @strawberry.mutation
    async def cancel_job(self, info: Info, id: str) -> Job:
        out = await _call(_jobs(info).cancel(_checked(id, JobId, "id")))
        return Job.of(out.job, out.output_url)
