"""``/api/uploads``: presigned uploads into S3_BUCKET_IN, then the new object registered at once."""

from __future__ import annotations

from typing import Annotated

import msgspec
from litestar import Controller, post

from mpr_common.errors import MprError
from mpr_common.events import AssetView

from ..assets.schemas import ScanResult
from ..assets.service import AssetService
from ..http.fields import Key
from ..http.limits import MAX_KEY_CHARS
from .uploads import MAX_URLS_PER_CALL, UploadService

Size = Annotated[int, msgspec.Meta(ge=0)]
UploadId = Annotated[str, msgspec.Meta(min_length=1, max_length=MAX_KEY_CHARS)]


class UploadStart(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    key: Key
    size: Size


class UploadTarget(msgspec.Struct, kw_only=True):
    """Where to send the bytes: ``url`` for one PUT (with this Content-Type and exactly ``size`` bytes),
    else a multipart upload of ``parts`` parts of ``part_size`` bytes (the last one shorter) whose URLs
    POST /api/uploads/parts gives. Either way POST /api/uploads/complete takes the ``upload_id``."""

    key: str
    bucket: str
    size: int
    content_type: str
    part_size: int
    parts: int
    url: str | None = None
    upload_id: str | None = None


class PartsWanted(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    key: Key
    size: Size
    upload_id: UploadId
    numbers: Annotated[list[int], msgspec.Meta(min_length=1, max_length=MAX_URLS_PER_CALL)]


class PartUrl(msgspec.Struct, kw_only=True):
    number: int
    size: int
    url: str


class PartUrls(msgspec.Struct, kw_only=True):
    parts: list[PartUrl]


class UploadFinish(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    key: Key
    size: Size
    upload_id: UploadId | None = None


class UploadAbort(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    key: Key
    upload_id: UploadId


class UploadDone(msgspec.Struct, kw_only=True):
    """The object is in S3_BUCKET_IN; ``scan`` is the scan of exactly its key, ``asset`` the asset it
    was registered as (None, with ``error``, if registering failed: a later scan will find it)."""

    key: str
    bucket: str
    size: int
    scan: ScanResult | None = None
    asset: AssetView | None = None
    error: str | None = None


class UploadController(Controller):
    path = "/api/uploads"
    tags = ["uploads"]

    @post(
        "/",
        status_code=201,
        summary="Start an upload into S3_BUCKET_IN: a presigned PUT or a multipart upload",
    )
    async def start(self, uploads: UploadService, data: UploadStart) -> UploadTarget:
        return msgspec.convert(await uploads.start(data.key, data.size), UploadTarget)

    @post("/parts", status_code=200, summary="Presigned URLs for parts of a multipart upload (100 at most)")
    async def parts(self, uploads: UploadService, data: PartsWanted) -> PartUrls:
        urls = uploads.part_urls(data.key, data.upload_id, data.size, data.numbers)
        return msgspec.convert({"parts": urls}, PartUrls)

    @post(
        "/complete",
        status_code=200,
        summary="Finish an upload and register the object at once (a scan of exactly its key)",
    )
    async def complete(self, uploads: UploadService, assets: AssetService, data: UploadFinish) -> UploadDone:
        await uploads.complete(data.key, data.size, data.upload_id)
        done = UploadDone(key=data.key, bucket=uploads.bucket, size=data.size)
        try:
            done.scan = await assets.scan(data.key)
            items, _ = await assets.list(10, 0, data.key)
        except MprError as exc:
            done.error = f"uploaded, but not registered yet: {exc.detail}"
            return done
        done.asset = next((a for a in items if a.key == data.key and a.bucket == uploads.bucket), None)
        return done

    @post("/abort", status_code=204, summary="Abandon a multipart upload (S3 drops the parts received)")
    async def abort(self, uploads: UploadService, data: UploadAbort) -> None:
        await uploads.abort(data.key, data.upload_id)
