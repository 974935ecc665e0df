"""GraphQL: the seed's ``scanMediaFolder`` mutation, plus assets and jobs. Same backend as REST."""

from __future__ import annotations

import enum
from functools import partial
from typing import Any

import msgspec
import strawberry
from graphql import GraphQLError
from strawberry.extensions import MaskErrors
from strawberry.types import Info

from mpr_common.errors import BadRequest
from mpr_common.events import JOB_KINDS, AssetView, JobStatus, JobView

from .domain.assets import AssetService
from .domain.jobs import JobService
from .graphql_errors import call as _call
from .graphql_errors import checked as _checked
from .graphql_errors import maybe as _maybe
from .graphql_limits import schema_extensions
from .limits import MAX_OFFSET, MAX_PAGE
from .schemas import AssetId, JobCreate, JobId, KeyPrefix


def _jobs(info: Info) -> JobService:
    return info.context["request"].app.state.jobs


def _assets(info: Info) -> AssetService:
    return info.context["request"].app.state.assets


def _page(limit: int, offset: int) -> None:
    if not (1 <= limit <= MAX_PAGE) or not (0 <= offset <= MAX_OFFSET):
        raise GraphQLError(
            f"limit must be 1-{MAX_PAGE} and offset 0-{MAX_OFFSET}", extensions={"code": BadRequest.name}
        )


@strawberry.type
class ScanResult:
    found: int
    registered: int
    skipped: int
    files: list[str]


@strawberry.type
class MediaInfo:
    format_name: str | None
    duration: float | None
    bit_rate: int | None
    video_codec: str | None
    width: int | None
    height: int | None
    fps: float | None
    audio_codec: str | None
    sample_rate: int | None
    channels: int | None


@strawberry.type
class Asset:
    id: str
    bucket: str
    key: str
    etag: str
    size: float
    media_type: str | None
    probe_status: str
    probe_error: str | None
    info: MediaInfo | None

    @classmethod
    def of(cls, a: AssetView) -> Asset:
        info = None
        if a.info is not None:
            i = a.info
            info = MediaInfo(
                format_name=i.format_name,
                duration=i.duration,
                bit_rate=i.bit_rate,
                video_codec=i.video_codec,
                width=i.width,
                height=i.height,
                fps=i.fps,
                audio_codec=i.audio_codec,
                sample_rate=i.sample_rate,
                channels=i.channels,
            )
        return cls(
            id=a.id,
            bucket=a.bucket,
            key=a.key,
            etag=a.etag,
            size=float(a.size),
            media_type=a.media_type,
            probe_status=a.probe_status,
            probe_error=a.probe_error,
            info=info,
        )


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
    template: str | None = None
    priority: str | None = None


@strawberry.type
class Query:
    @strawberry.field
    async def assets(
        self, info: Info, limit: int = 100, offset: int = 0, prefix: str | None = None
    ) -> list[Asset]:
        _page(limit, offset)
        prefix = _checked(prefix, KeyPrefix | None, "prefix")
        assets, _ = await _call(_assets(info).list(limit, offset, prefix))
        return [Asset.of(a) for a in assets]

    @strawberry.field
    async def asset(self, info: Info, id: str) -> Asset | None:
        asset = await _maybe(_assets(info).get(_checked(id, AssetId, "id")))
        return Asset.of(asset) if asset else None

    @strawberry.field
    async def job(self, info: Info, id: str) -> Job | None:
        out = await _maybe(_jobs(info).get(_checked(id, JobId, "id")))
        return Job.of(out.job, out.output_url) if out else None

    @strawberry.field
    async def jobs(
        self, info: Info, limit: int = 100, offset: int = 0, status: str | None = None
    ) -> list[Job]:
        _page(limit, offset)
        status = _checked(status, JobStatus | None, "status")
        items, _ = await _call(_jobs(info).list(limit, offset, status))
        return [Job.of(o.job, o.output_url) for o in items]


@strawberry.type
class Mutation:
    @strawberry.mutation(description="List S3_BUCKET_IN and register new media files")
    async def scan_media_folder(self, info: Info, prefix: str = "") -> ScanResult:
        r = await _call(_assets(info).scan(_checked(prefix, KeyPrefix, "prefix")))
        return ScanResult(found=r.found, registered=r.registered, skipped=r.skipped, files=r.files)

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
            "template": job.template,
            **({"priority": job.priority} if job.priority else {}),
        }
        body = _checked(fields, JobCreate, "job")  # the same bounds as POST /api/jobs
        out, _ = await _call(_jobs(info).submit(body, requested_by="graphql"))
        return Job.of(out.job, out.output_url)

    @strawberry.mutation
    async def cancel_job(self, info: Info, id: str) -> Job:
        out = await _call(_jobs(info).cancel(_checked(id, JobId, "id")))
        return Job.of(out.job, out.output_url)


def build_schema() -> strawberry.Schema:
    """The core Query and Mutation merged with the fields of the feature modules (features/)."""
    from strawberry.tools import merge_types

    from .features import FEATURES

    def merged(name: str, core: type | None, attr: str) -> Any:
        types = tuple(t for t in [core, *(getattr(f, attr) for f in FEATURES)] if t is not None)
        return merge_types(name, types) if len(types) > 1 else (types[0] if types else None)

    return strawberry.Schema(
        query=merged("Query", Query, "graphql_query"),
        mutation=merged("Mutation", Mutation, "graphql_mutation"),
        subscription=merged("Subscription", None, "graphql_subscription"),
        extensions=[
            *schema_extensions(),
            partial(MaskErrors, should_mask_error=_unexpected, error_message=INTERNAL_ERROR),
        ],
    )


INTERNAL_ERROR = "internal error"  # as REST's 500: what a bug raised is logged, never shown


def _unexpected(error: GraphQLError) -> bool:
    """A resolver's error (it has a path) that MPR did not raise on purpose: MPR's are GraphQLErrors
    (graphql_errors.py). Errors before execution (parse, validation, coercion of arguments, limits)
    have no path and say what is wrong with the request."""
    original = error.original_error
    return error.path is not None and original is not None and not isinstance(original, GraphQLError)


schema = build_schema()
