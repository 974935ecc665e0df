from __future__ import annotations

from litestar import Request, route
from litestar.response import Redirect, Response, Stream
from litestar.status_codes import HTTP_307_TEMPORARY_REDIRECT

from mpr_common.storage import guess_content_type

from ..domain.assets import AssetService
from ..media_links import SIGNED_PREFIX, is_manifest

# A signed link is a capability: any page may play it (no cookie or other credential rides along), and
# no shared cache should keep what it named.
_SIGNED_HEADERS = {"Access-Control-Allow-Origin": "*", "Cache-Control": "private, no-store"}
# A manifest is served from the API's origin: never rendered as a page (an MPD is XML).
_MANIFEST_HEADERS = {
    **_SIGNED_HEADERS,
    "X-Content-Type-Options": "nosniff",
    "Content-Security-Policy": "default-src 'none'; sandbox",
}


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
    summary=(
        "Redirect to a presigned URL of an object in S3_BUCKET_OUT, or for a playlist, DASH manifest or "
        "WebVTT track to a signed link of its folder (URL-encode the key)"
    ),
)
async def media_out(assets: AssetService, key: str) -> Redirect:
    return Redirect(assets.media_url("out", key.lstrip("/")), status_code=HTTP_307_TEMPORARY_REDIRECT)


@route(
    SIGNED_PREFIX + "{token:str}/{path:path}",
    http_method=["GET", "HEAD"],
    tags=["media"],
    summary="Read an output through a signed folder link (the token is the credential: no bearer token)",
    description=(
        "`path` is `<bucket>/<key>`. Playlists (.m3u8), DASH manifests (.mpd) and WebVTT tracks (.vtt) "
        "are served here, so that their relative links stay under the same link; anything else is a 307 "
        "to a presigned S3 URL, or streamed from S3 when API_MEDIA_PROXY is on. 403: the link is forged, "
        "expired or for another folder."
    ),
    security=[],
)
async def media_signed(
    request: Request, assets: AssetService, token: str, path: str
) -> Response | Redirect | Stream:
    bucket, _, key = path.lstrip("/").partition("/")
    assets.check_signed(token, bucket, key)
    head = request.method == "HEAD"
    if is_manifest(key):
        body = await assets.read_manifest(bucket, key)
        headers = {**_MANIFEST_HEADERS, "Content-Length": str(len(body))}
        return Response(b"" if head else body, media_type=guess_content_type(key), headers=headers)
    if not assets.settings.media_proxy:
        return Redirect(
            assets.presigned(bucket, key), status_code=HTTP_307_TEMPORARY_REDIRECT, headers=_SIGNED_HEADERS
        )
    obj = await assets.read_object(bucket, key, request.headers.get("range"), head)
    headers = {**_SIGNED_HEADERS, **obj.headers}
    media_type = headers.pop("Content-Type")
    if obj.chunks is None:
        return Response(b"", status_code=obj.status, media_type=media_type, headers=headers)
    return Stream(obj.chunks, status_code=obj.status, media_type=media_type, headers=headers)
