from __future__ import annotations

from typing import Annotated

from litestar import Controller, get, post
from litestar.params import Body, Parameter

from mpr_common.events import AssetView, ScanView

from ..domain.assets import AssetService
from ..schemas import AssetPage, ScanBody, ScanResult


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
        limit: Annotated[int, Parameter(ge=1, le=1000)] = 100,
        offset: Annotated[int, Parameter(ge=0, le=1_000_000_000)] = 0,
        prefix: Annotated[str | None, Parameter(max_length=1024)] = None,
    ) -> AssetPage:
        items, total = await assets.list(limit, offset, prefix)
        return AssetPage(items=items, total=total, limit=limit, offset=offset)

    @get("/{asset_id:str}", summary="One asset")
    async def get_asset(
        self,
        assets: AssetService,
        asset_id: Annotated[str, Parameter(max_length=64, pattern="^[0-9a-f]{32}$")],
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
        scan_id: Annotated[str, Parameter(max_length=64, pattern="^[A-Za-z0-9_-]+$")],
    ) -> ScanView:
        return await assets.get_scan(scan_id)
