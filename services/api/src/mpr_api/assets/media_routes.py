from __future__ import annotations

import anyio.to_thread
from litestar import Request, route
from litestar.response import Redirect, Response, Stream
from litestar.serialization import encode_json
from litestar.status_codes import HTTP_307_TEMPORARY_REDIRECT

from mpr_common.content_keys import KEY_PATH_PREFIX, LICENSE_DATA_ID, LICENSE_PATH_PREFIX
from mpr_common.errors import MprError
from mpr_common.keys import extension
from mpr_common.storage import get_presigned_url, guess_content_type

from ..http.auth import SIGNED_PREFIX
from ..http.player_cors import KEY_METHODS, LICENSE_METHODS, SIGNED_MEDIA_METHODS
from ..http.request_url import request_base_url
from .media_links import (
    is_manifest,
    link_expires,
    presign_seconds,
    rewrite_playlist,
)
from .service import AssetService

# A signed link is a capability: no shared cache should keep what it named. Which pages may play it
# (CORS) is the edge's (http/player_cors.py), for these routes only.
_SIGNED_HEADERS = {"Cache-Control": "private, no-store"}
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
    http_method=list(SIGNED_MEDIA_METHODS),
    tags=["media"],
    summary="Read an output through a signed folder link (the token is the credential: no bearer token)",
    description=(
        "`path` is `<bucket>/<key>`. Playlists (.m3u8), DASH manifests (.mpd) and WebVTT tracks (.vtt) "
        "are served here, so that their relative links stay under the same link. In an HLS playlist, "
        "each segment and init segment of its folder is written as a presigned S3 URL valid as long as "
        "the link (one hop per segment); with API_MEDIA_PROXY on they stay relative and are streamed "
        "through the API. Anything else named under the link (a DASH segment, a storyboard image) is "
        "a 307 to a presigned S3 URL, or streamed from S3 when API_MEDIA_PROXY is on. 403: the link is "
        "forged, expired or for another folder."
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
        if extension(key) == ".m3u8":
            body = await _key_tokens(assets, token, bucket, key, body)
        if extension(key) in (".m3u8", ".mpd"):
            body = await _license_tokens(assets, token, bucket, key, body)
        if extension(key) == ".m3u8" and not assets.settings.media_proxy:
            body = await anyio.to_thread.run_sync(_presign_segments, assets, token, bucket, key, body)
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


async def _key_tokens(assets: AssetService, token: str, bucket: str, key: str, body: bytes) -> bytes:
    """An encrypted package's playlist with a playback token, expiring with the link, in its key URIs."""
    try:
        text = body.decode()
    except UnicodeDecodeError:
        return body
    base = assets.links.public_url or request_base_url() or ""
    return (await assets.keys.with_key_tokens(text, bucket, key, link_expires(token), base)).encode()


async def _license_tokens(assets: AssetService, token: str, bucket: str, key: str, body: bytes) -> bytes:
    """A cenc package's MPD or master playlist with a playback token, expiring with the link, in its
    licence URLs."""
    try:
        text = body.decode()
    except UnicodeDecodeError:
        return body
    base = assets.links.public_url or request_base_url() or ""
    return (await assets.keys.with_license_tokens(text, bucket, key, link_expires(token), base)).encode()


@route(
    LICENSE_PATH_PREFIX + "{package_id:str}",
    http_method=list(LICENSE_METHODS),
    tags=["media"],
    summary="A cenc package's W3C ClearKey licence for a playback token bound to the package",
    description=(
        'The EME ClearKey licence request (`{"kids": ["<base64url KID>"], "type": "temporary"}`) POSTed '
        "to the licence URL of a `cenc` package's MPD (`dashif:Laurl`) or master playlist "
        f"(`EXT-X-SESSION-DATA` `{LICENSE_DATA_ID}`), which carry `?token=`, a playback token bound to "
        'the package that expires with its signed link. The answer: `{"keys": [{"kty": "oct", "k": …, '
        '"kid": …}], "type": "temporary"}`, the key only for its own KID. 400: a malformed request; 401: '
        "no token; 403: a token forged, expired or for another package; 404: no cenc package."
    ),
    security=[],
    status_code=200,
)
async def clearkey_license(
    request: Request, assets: AssetService, package_id: str, token: str | None = None
) -> Response:
    body = await request.body()
    licence = await assets.keys.license(package_id, token, body)
    return Response(encode_json(licence), media_type="application/json", headers=_SIGNED_HEADERS)


@route(
    KEY_PATH_PREFIX + "{package_id:str}",
    http_method=list(KEY_METHODS),
    tags=["media"],
    summary="An encrypted package's content key (16 bytes) for a playback token bound to the package",
    description=(
        "The URI of the `#EXT-X-KEY` tags of an `aes-128` package's media playlists. The playlists "
        "served under the package's signed link carry `?token=`, a playback token bound to the package "
        "that expires with the link; the token is the credential (no bearer token). 401: no token; 403: "
        "a token forged, expired or for another package; 404: no such package key."
    ),
    security=[],
)
async def content_key(assets: AssetService, package_id: str, token: str | None = None) -> Response:
    key = await assets.keys.key(package_id, token)
    return Response(key, media_type="application/octet-stream", headers=_SIGNED_HEADERS)


def _presign_segments(assets: AssetService, token: str, bucket: str, key: str, body: bytes) -> bytes:
    """The playlist with its segments as presigned S3 URLs that live as long as the link does."""
    seconds = presign_seconds(link_expires(token))
    try:
        text = body.decode()
    except UnicodeDecodeError:
        return body  # not a playlist MPR wrote: served as stored

    def presign(segment: str) -> str | None:
        try:
            assets.check_signed(token, bucket, segment)
        except MprError:
            return None  # not granted or not an output MPR serves: left relative (the API refuses it)
        return get_presigned_url(segment, bucket, seconds, client=assets.public_s3)

    return rewrite_playlist(text, key, presign).encode()
