"""Assets and scans: scans are asked of a scanner, results and assets read from the catalog; media
links are presigned here."""

from __future__ import annotations

from typing import Any

from nats.aio.client import Client
from nats.errors import TimeoutError as NatsTimeoutError

from mpr_common import subjects as s
from mpr_common.bus import request
from mpr_common.codec import decoder, encode
from mpr_common.errors import BadRequest, NotFound, Unavailable, error_from_headers
from mpr_common.events import (
    AssetView,
    Query,
    QueryReply,
    RefusedObject,
    ScanChunk,
    ScanRequest,
    ScanView,
    new_id,
)
from mpr_common.keys import MEDIA_EXTENSIONS, extension, validate_key
from mpr_common.presets import OUTPUT_EXTENSIONS
from mpr_common.storage import get_presigned_url

from ..schemas import ScanResult
from ..settings import ApiSettings

_chunk = decoder(ScanChunk)


class AssetService:
    def __init__(self, settings: ApiSettings, nc: Client, public_s3: Any) -> None:
        self.settings = settings
        self.nc = nc
        self.public_s3 = public_s3

    async def _query(self, subject: str, q: Query, timeout: float | None = None) -> QueryReply:
        return await request(self.nc, subject, q, QueryReply, timeout or self.settings.request_timeout)

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
        reply = await self._query(
            s.CATALOG_SCAN_GET, Query(id=scan_id, after_seq=after_seq), self.settings.scan_timeout
        )
        assert reply.scan is not None
        return reply.scan

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
    async def list(self, limit: int, offset: int, prefix: str | None) -> tuple[list[AssetView], int]:
        reply = await self._query(s.CATALOG_ASSETS_LIST, Query(limit=limit, offset=offset, prefix=prefix))
        return reply.assets, reply.total

    async def get(self, asset_id: str) -> AssetView:
        reply = await self._query(s.CATALOG_ASSET_GET, Query(id=asset_id))
        assert reply.asset is not None
        return reply.asset

    def media_url(self, which: str, key: str) -> str:
        """Presign only what MPR serves: sources with a media extension, outputs of a kind jobs write."""
        try:
            validate_key(key)
        except ValueError as exc:
            raise BadRequest(f"key: {exc}") from None
        allowed = MEDIA_EXTENSIONS if which == "in" else OUTPUT_EXTENSIONS
        if extension(key) not in allowed:
            raise NotFound(f"{key!r} is not a media file MPR serves")
        bucket = self.settings.s3.bucket_in if which == "in" else self.settings.s3.bucket_out
        return get_presigned_url(key, bucket, client=self.public_s3)


def _checked_prefix(prefix: str) -> str:
    if prefix:
        try:
            validate_key(prefix.rstrip("/") or "x")
        except ValueError as exc:
            raise BadRequest(f"prefix: {exc}") from None
    return prefix
