from __future__ import annotations

from typing import Annotated

from litestar import Controller, get, post
from litestar.params import Body, Parameter

from mpr_common.events import AssetView, ScanView

from ..http.fields import ASSET_ID_PATTERN, ID_PATTERN
from ..http.limits import MAX_ID_CHARS, MAX_KEY_CHARS, MAX_OFFSET, MAX_PAGE
from .schemas import AssetPage, ScanBody, ScanResult
from .service import AssetService


class AssetController(Controller):
    path = "/api/assets"
    tags = ["assets"]

    @post(
        "/scan",
        status_code=200,
        summary="List S3_BUCKET_IN and register new media files",
        description="Answers once the catalog has every listed object. For very large buckets use POST /api/scans.",
    )
    async def scan(self, assets: AssetService, data: Annotated[ScanBody | None, Body()] = None) -> ScanResult:
        return await assets.scan((data or ScanBody()).prefix)

    @get("/", summary="Registered assets with their ffprobe metadata")
    async def list_assets(
        self,
        assets: AssetService,
        limit: Annotated[int, Parameter(ge=1, le=MAX_PAGE)] = 100,
        offset: Annotated[int, Parameter(ge=0, le=MAX_OFFSET)] = 0,
        prefix: Annotated[str | None, Parameter(max_length=MAX_KEY_CHARS)] = None,
        name: Annotated[
            str | None, Parameter(max_length=MAX_KEY_CHARS, description="a part of the key, any case")
        ] = None,
    ) -> AssetPage:
        items, total = await assets.list(limit, offset, prefix, name)
        return AssetPage(items=items, total=total, limit=limit, offset=offset)

    @get("/{asset_id:str}", summary="One asset")
    async def get_asset(
        self,
        assets: AssetService,
        asset_id: Annotated[str, Parameter(max_length=MAX_ID_CHARS, pattern=ASSET_ID_PATTERN)],
    ) -> AssetView:
        return await assets.get(asset_id)


class ScanController(Controller):
    path = "/api/scans"
    tags = ["assets"]

    @post("/", status_code=202, summary="Scan S3_BUCKET_IN in the background; follow it at /api/scans/{id}")
    async def start_scan(
        self, assets: AssetService, data: Annotated[ScanBody | None, Body()] = None
    ) -> ScanView:
        return await assets.start_scan((data or ScanBody()).prefix)

    @get("/{scan_id:str}", summary="A scan's progress: found, registered, skipped, removed, refused")
    async def get_scan(
        self,
        assets: AssetService,
        scan_id: Annotated[str, Parameter(max_length=MAX_ID_CHARS, pattern=ID_PATTERN)],
    ) -> ScanView:
        return await assets.get_scan(scan_id)
