from __future__ import annotations

from litestar import route
from litestar.response import Redirect
from litestar.status_codes import HTTP_307_TEMPORARY_REDIRECT

from ..backend import Backend


@route(
    "/media/in/{key:path}",
    http_method=["GET", "HEAD"],
    tags=["media"],
    summary="Redirect to a presigned URL of an object in S3_BUCKET_IN",
)
async def media_in(backend: Backend, key: str) -> Redirect:
    return Redirect(backend.media_url("in", key.lstrip("/")), status_code=HTTP_307_TEMPORARY_REDIRECT)


@route(
    "/media/out/{key:path}",
    http_method=["GET", "HEAD"],
    tags=["media"],
    summary="Redirect to a presigned URL of an object in S3_BUCKET_OUT",
)
async def media_out(backend: Backend, key: str) -> Redirect:
    return Redirect(backend.media_url("out", key.lstrip("/")), status_code=HTTP_307_TEMPORARY_REDIRECT)
