"""Assets and scans: scans are asked of a scanner, results and assets read from the catalog; media
links are made here (presigned S3 URLs, or signed folder links for manifests) and the objects a signed
link names are read here."""

from __future__ import annotations

import logging
import re
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import anyio.to_thread
import msgspec
from botocore.exceptions import BotoCoreError, ClientError
from nats.aio.client import Client
from nats.errors import TimeoutError as NatsTimeoutError

from mpr_common import subjects as s
from mpr_common.catalog_requests import GetAsset, GetScan, ListAssets
from mpr_common.codec import decoder, encode
from mpr_common.errors import MprError, NotFound, Unavailable, error_from_headers
from mpr_common.events import (
    AssetView,
    RefusedObject,
    ScanChunk,
    ScanRequest,
    ScanView,
    new_id,
)
from mpr_common.jobs import BucketPolicy
from mpr_common.keys import MEDIA_EXTENSIONS, extension, validate_key
from mpr_common.presets import OUTPUT_EXTENSIONS
from mpr_common.s3_client import S3Client
from mpr_common.storage import get_presigned_url, guess_content_type
from mpr_common.subtitles import list_sidecars

from ..catalog import ask_catalog
from ..http.field_errors import FieldError
from .content_keys import PackageKeys
from .media_links import MediaLinks
from .playback_tokens import PlaybackTokens
from .schemas import ScanResult
from .settings import AssetSettings

log = logging.getLogger(__name__)

_chunk = decoder(ScanChunk)
T = TypeVar("T")

# A manifest is read whole into memory: a day of 4 s HLS segments is about 1.5 MB of playlist.
MAX_MANIFEST_BYTES = 16 * 1024 * 1024
STREAM_CHUNK_BYTES = 256 * 1024
_ONE_RANGE = re.compile(r"bytes=(\d+-\d*|-\d+)")  # one range, as players send; others get the whole object


class RangeNotSatisfiable(MprError):
    code = 416
    name = "RANGE_NOT_SATISFIABLE"


@dataclass(frozen=True, slots=True)
class StoredObject:
    """An object (or the part a Range asked for) being read from S3 for a client."""

    status: int  # 200, or 206 for a range
    headers: dict[str, str]
    chunks: AsyncIterator[bytes] | None  # None for HEAD


class AssetService:
    def __init__(
        self, settings: AssetSettings, nc: Client, public_s3: S3Client, s3: S3Client, links: MediaLinks
    ) -> None:
        self.settings = settings
        self.nc = nc
        self.public_s3 = public_s3  # presigns links for clients (S3_PUBLIC_ENDPOINT_URL)
        self.s3 = s3  # reads what a signed link names (S3_ENDPOINT_URL: the public one may be unreachable)
        self.links = links
        # encrypted packages: their playlists' key tokens and their keys (content_keys.py)
        self.keys = PackageKeys(nc, settings.key_secret, PlaybackTokens(links.secret))
        self.signed_buckets = BucketPolicy.of(settings.s3).outputs

    # --- scans -------------------------------------------------------------------------------
    async def scan(self, prefix: str = "") -> ScanResult:
        """The seed's synchronous scan: every file listed, and counted once the catalog has them."""
        req = ScanRequest(scan_id=new_id(), prefix=_checked_prefix(prefix))
        keys: list[str] = []
        refused: list[RefusedObject] = []
        last_seq = 0
        async for chunk in self._ask_scanner(req):
            keys += chunk.keys
            refused += chunk.refused
            last_seq = chunk.last_seq
        scan = await self.get_scan(req.scan_id, after_seq=last_seq)
        return ScanResult(
            scan_id=scan.id,
            found=scan.found,
            registered=scan.registered,
            skipped=scan.skipped,
            removed=scan.removed,
            files=keys,
            refused=refused,
        )

    async def start_scan(self, prefix: str = "") -> ScanView:
        """A scan in the background (very large buckets): follow it with :meth:`get_scan`."""
        req = ScanRequest(scan_id=new_id(), prefix=_checked_prefix(prefix), reply_files=False)
        last_seq = 0
        async for chunk in self._ask_scanner(req):
            last_seq = chunk.last_seq
        return await self.get_scan(req.scan_id, after_seq=last_seq)

    async def get_scan(self, scan_id: str, after_seq: int = 0) -> ScanView:
        req = GetScan(id=scan_id, after_seq=after_seq)
        return (await ask_catalog(self.nc, req, self.settings.scan_timeout)).scan

    async def _ask_scanner(self, req: ScanRequest):
        """A scanner replies in chunks to our own inbox (a large bucket never exceeds NATS's max
        payload); the last one says done."""
        sub = await self.nc.subscribe(self.nc.new_inbox())
        try:
            await self.nc.publish(s.SCAN_REQUEST, encode(req), reply=sub.subject)
            while True:
                try:
                    msg = await sub.next_msg(timeout=self.settings.scan_timeout)
                except (TimeoutError, NatsTimeoutError):
                    raise Unavailable("the scanner service did not answer in time") from None
                if msg.headers and msg.headers.get("Status") == "503":
                    raise Unavailable("no scanner service is running")
                error = error_from_headers(msg.headers)
                if error is not None:
                    raise error
                chunk = _chunk.decode(msg.data)
                yield chunk
                if chunk.done:
                    return
        finally:
            await sub.unsubscribe()

    # --- assets ------------------------------------------------------------------------------
    async def list(
        self, limit: int, offset: int, prefix: str | None, name: str | None = None
    ) -> tuple[list[AssetView], int]:
        req = ListAssets(limit=limit, offset=offset, prefix=prefix, name=name or None)
        reply = await ask_catalog(self.nc, req, self.settings.request_timeout)
        return reply.assets, reply.total

    async def get(self, asset_id: str) -> AssetView:
        """The catalog's asset, with the subtitle sidecars beside it in its bucket (listed now: a sidecar
        uploaded after its video is found; None when the listing fails, the asset is still answered)."""
        asset = (await ask_catalog(self.nc, GetAsset(id=asset_id), self.settings.request_timeout)).asset
        if asset.removed:
            return asset
        try:
            found = await anyio.to_thread.run_sync(list_sidecars, self.s3, asset.bucket, asset.key)
        except (ClientError, BotoCoreError) as exc:
            log.warning("listing the sidecars of %s/%s failed: %s", asset.bucket, asset.key, exc)
            return asset
        return msgspec.structs.replace(asset, sidecars=found)

    def media_url(self, which: str, key: str) -> str:
        """Link only what MPR serves: sources with a media extension, outputs of a kind jobs write. A
        manifest gets a signed folder link (its relative links must resolve), the rest a presigned URL."""
        try:
            validate_key(key)
        except ValueError as exc:
            raise FieldError(f"key: {exc}", "key") from None
        allowed = MEDIA_EXTENSIONS if which == "in" else OUTPUT_EXTENSIONS
        if extension(key) not in allowed:
            raise NotFound(f"{key!r} is not a media file MPR serves")
        bucket = self.settings.s3.bucket_in if which == "in" else self.settings.s3.bucket_out
        return self.links.link(bucket, key, self.public_s3)

    # --- objects named by a signed link ----------------------------------------------------------
    def check_signed(self, token: str, bucket: str, key: str) -> None:
        """Raise unless ``token`` grants ``bucket/key`` and it is an output MPR serves."""
        try:
            validate_key(key)
        except ValueError as exc:
            raise FieldError(f"key: {exc}", "key") from None
        self.links.check(token, bucket, key)
        if bucket not in self.signed_buckets:
            raise NotFound(f"bucket {bucket!r} holds no outputs MPR serves")
        if extension(key) not in OUTPUT_EXTENSIONS:
            raise NotFound(f"{key!r} is not a media file MPR serves")

    def presigned(self, bucket: str, key: str) -> str:
        return get_presigned_url(key, bucket, client=self.public_s3)

    async def read_manifest(self, bucket: str, key: str) -> bytes:
        def read() -> bytes:
            obj = self.s3.get_object(Bucket=bucket, Key=key)
            with obj["Body"] as body:
                if int(obj.get("ContentLength", 0)) > MAX_MANIFEST_BYTES:
                    raise NotFound(
                        f"{key!r} is larger than {MAX_MANIFEST_BYTES} bytes: not a manifest MPR serves"
                    )
                return body.read()

        return await _in_thread(read, bucket, key)

    async def read_object(self, bucket: str, key: str, range_header: str | None, head: bool) -> StoredObject:
        """The object streamed through the API (API_MEDIA_PROXY), with one byte range if asked."""
        params = {"Bucket": bucket, "Key": key}
        if range_header and _ONE_RANGE.fullmatch(range_header.strip()):
            params["Range"] = range_header.strip()
        if head:
            obj = await _in_thread(lambda: self.s3.head_object(**params), bucket, key)
        else:
            obj = await _in_thread(lambda: self.s3.get_object(**params), bucket, key)
        headers = {
            "Content-Type": guess_content_type(key),
            "Content-Length": str(obj.get("ContentLength", 0)),
            "Accept-Ranges": "bytes",
        }
        if obj.get("ContentRange"):
            headers["Content-Range"] = obj["ContentRange"]
        if obj.get("ETag"):
            headers["ETag"] = obj["ETag"]
        status = 206 if obj.get("ContentRange") else 200
        return StoredObject(status, headers, None if head else _chunks(obj["Body"]))


async def _in_thread(call: Callable[[], T], bucket: str, key: str) -> T:
    """A blocking S3 call off the event loop, its failures as the client should see them."""
    try:
        return await anyio.to_thread.run_sync(call)
    except ClientError as exc:
        code = str(exc.response.get("Error", {}).get("Code", ""))
        if code in ("NoSuchKey", "404", "NotFound"):
            raise NotFound(f"no object {key!r} in {bucket}") from None
        if code == "InvalidRange":
            raise RangeNotSatisfiable(f"the range asked for is outside {key!r}") from None
        raise Unavailable(f"storage refused reading {key!r} ({code or 'error'})") from None
    except BotoCoreError as exc:
        raise Unavailable(f"storage did not answer ({type(exc).__name__})") from None


async def _chunks(body: Any) -> AsyncIterator[bytes]:
    try:
        while chunk := await anyio.to_thread.run_sync(body.read, STREAM_CHUNK_BYTES):
            yield chunk
    finally:
        body.close()


def _checked_prefix(prefix: str) -> str:
    if prefix:
        try:
            validate_key(prefix.rstrip("/") or "x")
        except ValueError as exc:
            raise FieldError(f"prefix: {exc}", "prefix") from None
    return prefix
