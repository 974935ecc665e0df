from __future__ import annotations

from typing import Annotated

from litestar import Controller, get, post
from litestar.params import Body, Parameter

from mpr_common.events import AssetView

from ..backend import Backend
from ..schemas import AssetPage, ScanBody, ScanResult


class AssetController(Controller):
    path = "/api/assets"
    tags = ["assets"]

    @post("/scan", status_code=200, summary="List S3_BUCKET_IN and register new media files")
    async def scan(self, backend: Backend, data: Annotated[ScanBody | None, Body()] = None) -> ScanResult:
        return await backend.scan((data or ScanBody()).prefix)

    @get("/", summary="Registered assets with their ffprobe metadata")
    async def list_assets(
        self,
        backend: Backend,
        limit: Annotated[int, Parameter(ge=1, le=1000)] = 100,
        offset: Annotated[int, Parameter(ge=0, le=1_000_000_000)] = 0,
        prefix: Annotated[str | None, Parameter(max_length=1024)] = None,
    ) -> AssetPage:
        reply = await backend.list_assets(limit, offset, prefix)
        return AssetPage(items=reply.assets, total=reply.total, limit=limit, offset=offset)

    @get("/{asset_id:str}", summary="One asset")
    async def get_asset(
        self, backend: Backend, asset_id: Annotated[str, Parameter(max_length=64, pattern="^[0-9a-f]{32}$")]
    ) -> AssetView:
        reply = await backend.get_asset(asset_id)
        assert reply.asset is not None
        return reply.asset
