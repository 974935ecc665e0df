from __future__ import annotations

from litestar import route
from litestar.response import Redirect
from litestar.status_codes import HTTP_307_TEMPORARY_REDIRECT

from ..domain.assets import AssetService


@route(
    "/media/in/{key:path}",
    http_method=["GET", "HEAD"],
    tags=["media"],
    summary="Redirect to a presigned URL of an object in S3_BUCKET_IN (URL-encode the key)",
)
async def media_in(assets: AssetService, key: str) -> Redirect:
    return Redirect(assets.media_url("in", key.lstrip("/")), status_code=HTTP_307_TEMPORARY_REDIRECT)


@route(
    "/media/out/{key:path}",
    http_method=["GET", "HEAD"],
    tags=["media"],
    summary="Redirect to a presigned URL of an object in S3_BUCKET_OUT (URL-encode the key)",
)
async def media_out(assets: AssetService, key: str) -> Redirect:
    return Redirect(assets.media_url("out", key.lstrip("/")), status_code=HTTP_307_TEMPORARY_REDIRECT)
