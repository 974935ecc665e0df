"""The assets domain in GraphQL: ``assets``, ``asset`` and the seed's ``scanMediaFolder`` mutation."""

from __future__ import annotations

import strawberry
from strawberry.types import Info

from mpr_common.events import AssetView

from ..graphql.context import service
from ..graphql.errors import call as _call
from ..graphql.errors import checked as _checked
from ..graphql.errors import maybe as _maybe
from ..graphql.paging import check_page
from ..http.fields import AssetId, KeyPrefix
from .service import AssetService


def _assets(info: Info) -> AssetService:
    return service(info, AssetService)


@strawberry.type
class ScanResult:
    found: int
    registered: int
    skipped: int
    files: list[str]


@strawberry.type(description="An audio stream of the source (index: among its audio streams)")
class AudioStream:
    index: int
    codec: str | None
    channels: int | None
    language: str | None
    title: str | None


@strawberry.type(description="A subtitle stream of the source (index: among its subtitle streams)")
class SubtitleStream:
    index: int
    codec: str | None
    language: str | None
    title: str | None
    default: bool
    forced: bool


@strawberry.type(description="A subtitle file beside the source (<stem>.<language>.srt|vtt)")
class Sidecar:
    key: str
    language: str | None


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
    audio_streams: list[AudioStream]
    subtitle_streams: list[SubtitleStream]


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
    sidecars: list[Sidecar] | None = strawberry.field(
        description="subtitle files beside it, listed when one asset is read (null in a list of assets)"
    )

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
                audio_streams=[
                    AudioStream(
                        index=s.index, codec=s.codec, channels=s.channels, language=s.language, title=s.title
                    )
                    for s in i.audio_streams
                ],
                subtitle_streams=[
                    SubtitleStream(
                        index=s.index,
                        codec=s.codec,
                        language=s.language,
                        title=s.title,
                        default=s.default,
                        forced=s.forced,
                    )
                    for s in i.subtitle_streams
                ],
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
            sidecars=None
            if a.sidecars is None
            else [Sidecar(key=f.key, language=f.language) for f in a.sidecars],
        )


@strawberry.type
class AssetsQuery:
    @strawberry.field
    async def assets(
        self, info: Info, limit: int = 100, offset: int = 0, prefix: str | None = None
    ) -> list[Asset]:
        check_page(limit, offset)
        prefix = _checked(prefix, KeyPrefix | None, "prefix")
        assets, _ = await _call(_assets(info).list(limit, offset, prefix))
        return [Asset.of(a) for a in assets]

    @strawberry.field
    async def asset(self, info: Info, id: str) -> Asset | None:
        asset = await _maybe(_assets(info).get(_checked(id, AssetId, "id")))
        return Asset.of(asset) if asset else None


@strawberry.type
class AssetsMutation:
    @strawberry.mutation(description="List S3_BUCKET_IN and register new media files")
    async def scan_media_folder(self, info: Info, prefix: str = "") -> ScanResult:
        r = await _call(_assets(info).scan(_checked(prefix, KeyPrefix, "prefix")))
        return ScanResult(found=r.found, registered=r.registered, skipped=r.skipped, files=r.files)
