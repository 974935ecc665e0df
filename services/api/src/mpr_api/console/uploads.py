"""Uploads straight from the browser to S3_BUCKET_IN: the API signs, the browser sends the bytes.

Up to one part's size a file goes in one presigned PUT; beyond it in a multipart upload that the API
opens, whose parts the browser PUTs to presigned URLs (asked for in batches: a 100 GB file has thousands),
and that the API completes from S3's own list of the parts it received (the browser never has to read an
ETag header, which S3 would have to expose through CORS). Then the API asks for a scan of exactly that
key, so the new asset is registered at once instead of at the next scan or bucket notification.

A presigned URL is bound to the plan: it signs the Content-Length it must carry (S3 refuses another
length), and the server checks again at completion, as an S3 server may not check signed headers (moto's
does not). A single PUT goes to a staging key of its own (``.mpr-uploads/<upload_id>``, no media
extension: no scan sees it), never to the key itself: at completion the API checks the staged object's
size, copies it to the key (only if the key is still free) and deletes it. So a URL used again within its
hour, or a PUT of another size, can neither replace nor become an object of S3_BUCKET_IN. A multipart
upload is completed only onto a free key (``If-None-Match: *``).

The API's S3 identity may only write objects into S3_BUCKET_IN (deploy/minio-policies/api.json) and
delete staged ones; an upload never replaces an existing object (the source of other jobs)."""

from __future__ import annotations

import logging
import math
import re
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import anyio.to_thread
from botocore.exceptions import BotoCoreError, ClientError

from mpr_common.errors import Conflict, NotFound, Unavailable
from mpr_common.keys import MEDIA_EXTENSIONS, extension, validate_key
from mpr_common.s3_client import S3Client
from mpr_common.storage import guess_content_type

from ..http.field_errors import FieldConflict, FieldError
from .settings import ConsoleSettings

T = TypeVar("T")
log = logging.getLogger("mpr.api.uploads")

MIN_PART_BYTES = 5 * 1024 * 1024  # S3's smallest part (all but the last)
MAX_PARTS = 10_000  # S3's most parts in one upload
MAX_PART_BYTES = 5 * 1024**3  # S3's largest part
MAX_URLS_PER_CALL = 100  # presigned part URLs in one answer
_MIB = 1024 * 1024
# Where a single PUT lands until its upload is completed: no media extension, so no scan registers it.
STAGING_PREFIX = ".mpr-uploads/"
_STAGING_ID = re.compile(r"[0-9a-f]{32}")


@dataclass(frozen=True, slots=True)
class UploadPlan:
    """How a file of ``size`` bytes is sent: ``parts`` == 0 means one PUT."""

    size: int
    part_size: int
    parts: int

    @property
    def multipart(self) -> bool:
        return self.parts > 0

    def part_length(self, number: int) -> int:
        """Bytes of part ``number`` (1-based): every part is ``part_size`` but the last."""
        if not 1 <= number <= self.parts:
            raise ValueError(f"part {number} is outside 1..{self.parts}")
        return min(self.part_size, self.size - (number - 1) * self.part_size)


def plan_upload(size: int, part_bytes: int, max_bytes: int) -> UploadPlan:
    """One PUT up to ``part_bytes``; beyond, parts of ``part_bytes`` (at least S3's 5 MiB), made larger
    in whole MiB when the file would need more than S3's 10,000 parts. Raises BadRequest for a size S3
    or the API's limit refuses."""
    if size < 0:
        raise FieldError("size: must be 0 or more bytes", "size")
    limit = min(max_bytes, MAX_PARTS * MAX_PART_BYTES)
    if size > limit:
        raise FieldError(f"size: {size} bytes is more than the {limit} bytes an upload may have", "size")
    part = max(part_bytes, MIN_PART_BYTES)
    if size <= part:
        return UploadPlan(size=size, part_size=size, parts=0)
    part = max(part, math.ceil(size / MAX_PARTS / _MIB) * _MIB)
    return UploadPlan(size=size, part_size=part, parts=math.ceil(size / part))


def staging_key(upload_id: str) -> str:
    """The staging key of a single PUT's upload id (which the API made: 32 hex digits)."""
    if not _STAGING_ID.fullmatch(upload_id):
        raise FieldError("upload_id: not the id of an upload of one PUT that this API started", "upload_id")
    return STAGING_PREFIX + upload_id


def checked_upload_key(key: str) -> str:
    """A key the console may upload to: a valid S3 key of a media file MPR handles."""
    try:
        validate_key(key)
    except ValueError as exc:
        raise FieldError(f"key: {exc}", "key") from None
    if extension(key) not in MEDIA_EXTENSIONS:
        raise FieldError(
            f"key: must end with a media extension ({', '.join(sorted(MEDIA_EXTENSIONS))})", "key"
        )
    return key


@dataclass(frozen=True, slots=True)
class ReceivedPart:
    number: int
    size: int
    etag: str


def missing_parts(plan: UploadPlan, received: list[ReceivedPart]) -> str | None:
    """``None`` when S3 holds every part of ``plan`` at its size, else what is wrong (for the client)."""
    by_number = {p.number: p for p in received}
    absent = [n for n in range(1, plan.parts + 1) if n not in by_number]
    if absent:
        shown = ", ".join(map(str, absent[:10])) + (" …" if len(absent) > 10 else "")
        return f"S3 has not received part(s) {shown} of {plan.parts}"
    extra = sorted(n for n in by_number if n > plan.parts)
    if extra:
        return f"S3 holds part(s) beyond the {plan.parts} of this file: {extra[:10]}"
    wrong = [n for n in range(1, plan.parts + 1) if by_number[n].size != plan.part_length(n)]
    if wrong:
        return f"part(s) {wrong[:10]} do not have the size this file's plan gives them"
    return None


class UploadService:
    def __init__(self, settings: ConsoleSettings, s3: S3Client, public_s3: S3Client) -> None:
        self.settings = settings
        self.bucket = settings.s3.bucket_in
        self.s3 = s3  # opens, lists and completes uploads (S3_ENDPOINT_URL)
        self.public_s3 = public_s3  # signs the URLs the browser sends to (S3_PUBLIC_ENDPOINT_URL)

    def plan(self, size: int) -> UploadPlan:
        return plan_upload(size, self.settings.upload_part_bytes, self.settings.upload_max_bytes)

    async def start(self, key: str, size: int) -> dict[str, Any]:
        """Where the browser sends the file: one presigned PUT URL, or a multipart upload's id and
        plan (its part URLs come from :meth:`part_urls`)."""
        checked_upload_key(key)
        plan = self.plan(size)
        if await self._exists(key):
            raise FieldConflict(f"key: {key!r} already exists in {self.bucket}; choose another name", "key")
        content_type = guess_content_type(key)
        answer: dict[str, Any] = {
            "key": key,
            "bucket": self.bucket,
            "size": size,
            "content_type": content_type,
            "part_size": plan.part_size,
            "parts": plan.parts,
        }
        if not plan.multipart:
            upload_id = secrets.token_hex(16)
            answer["upload_id"] = upload_id
            answer["url"] = self._presign(
                "put_object",
                {
                    "Bucket": self.bucket,
                    "Key": staging_key(upload_id),
                    "ContentType": content_type,
                    "ContentLength": size,
                },
            )
            return answer
        created = await _in_thread(
            lambda: self.s3.create_multipart_upload(Bucket=self.bucket, Key=key, ContentType=content_type),
            key,
        )
        answer["upload_id"] = created["UploadId"]
        return answer

    def part_urls(self, key: str, upload_id: str, size: int, numbers: list[int]) -> list[dict[str, Any]]:
        checked_upload_key(key)
        plan = self.plan(size)
        if not plan.multipart:
            raise FieldError("size: a file of this size is sent in one PUT, not in parts", "size")
        if not numbers or len(numbers) > MAX_URLS_PER_CALL:
            raise FieldError(f"numbers: ask for 1 to {MAX_URLS_PER_CALL} parts at a time", "numbers")
        for n in numbers:
            if not 1 <= n <= plan.parts:
                raise FieldError(f"numbers: part {n} is outside 1..{plan.parts}", "numbers")
        return [
            {
                "number": n,
                "size": plan.part_length(n),
                "url": self._presign(
                    "upload_part",
                    {
                        "Bucket": self.bucket,
                        "Key": key,
                        "UploadId": upload_id,
                        "PartNumber": n,
                        "ContentLength": plan.part_length(n),
                    },
                ),
            }
            for n in numbers
        ]

    async def complete(self, key: str, size: int, upload_id: str | None) -> None:
        """Finish an upload: a multipart one from the parts S3 received (each at the size the plan
        gives it), a single PUT from its staged object, checked by its size; either only onto a key
        that is still free."""
        checked_upload_key(key)
        plan = self.plan(size)
        if upload_id is None:
            raise FieldError("upload_id: required (the one POST /api/uploads answered)", "upload_id")
        if not plan.multipart:
            await self._complete_single(key, size, staging_key(upload_id))
            return
        received = await self._received_parts(key, upload_id)
        problem = missing_parts(plan, received)
        if problem is not None:
            raise Conflict(problem)
        parts = [{"PartNumber": p.number, "ETag": p.etag} for p in sorted(received, key=lambda p: p.number)]
        await _in_thread(
            lambda: self.s3.complete_multipart_upload(
                Bucket=self.bucket,
                Key=key,
                UploadId=upload_id,
                MultipartUpload={"Parts": parts},
                IfNoneMatch="*",  # written meanwhile by someone else: not replaced
            ),
            key,
        )

    async def _complete_single(self, key: str, size: int, staged: str) -> None:
        """Copy the staged object onto ``key`` if it has the planned size and ``key`` is free. The staged
        object is deleted once copied or refused; kept when storage failed (completing again works)."""
        try:
            head = await _in_thread(lambda: self.s3.head_object(Bucket=self.bucket, Key=staged), key)
        except NotFound:
            raise NotFound(
                f"nothing was uploaded for {key!r} with this upload_id (or it was completed)"
            ) from None
        try:
            if int(head.get("ContentLength", -1)) != size:
                raise Conflict(
                    f"{key!r}: {head.get('ContentLength')} bytes were sent, not the {size} planned; "
                    "they were discarded"
                )
            if await self._exists(key):
                raise FieldConflict(
                    f"key: {key!r} already exists in {self.bucket}; the upload was discarded", "key"
                )
            # Conditions where S3 enforces them: the very object whose size was read, onto a free key.
            await _in_thread(
                lambda: self.s3.copy_object(
                    Bucket=self.bucket,
                    Key=key,
                    CopySource={"Bucket": self.bucket, "Key": staged},
                    CopySourceIfMatch=head["ETag"],
                    IfNoneMatch="*",
                    ContentType=guess_content_type(key),
                    MetadataDirective="REPLACE",
                ),
                key,
            )
        except Conflict:
            await self._discard(staged)
            raise
        await self._discard(staged)

    async def _discard(self, staged: str) -> None:
        try:
            await _in_thread(lambda: self.s3.delete_object(Bucket=self.bucket, Key=staged), staged)
        except (NotFound, Unavailable) as exc:  # left for the bucket's lifecycle rule; never a failure
            log.warning("staged upload %s not deleted: %s", staged, exc)

    async def abort(self, key: str, upload_id: str) -> None:
        checked_upload_key(key)
        await _in_thread(
            lambda: self.s3.abort_multipart_upload(Bucket=self.bucket, Key=key, UploadId=upload_id), key
        )

    async def _received_parts(self, key: str, upload_id: str) -> list[ReceivedPart]:
        def read() -> list[ReceivedPart]:
            parts: list[ReceivedPart] = []
            marker = 0
            while True:
                page = self.s3.list_parts(
                    Bucket=self.bucket, Key=key, UploadId=upload_id, PartNumberMarker=marker
                )
                parts += [
                    ReceivedPart(number=p["PartNumber"], size=p["Size"], etag=p["ETag"])
                    for p in page.get("Parts", [])
                ]
                if not page.get("IsTruncated"):
                    return parts
                marker = int(page["NextPartNumberMarker"])

        return await _in_thread(read, key)

    async def _exists(self, key: str) -> bool:
        try:
            await _in_thread(lambda: self.s3.head_object(Bucket=self.bucket, Key=key), key)
        except NotFound:
            return False
        return True

    def _presign(self, method: str, params: dict[str, Any]) -> str:
        return self.public_s3.generate_presigned_url(
            method, Params=params, ExpiresIn=self.settings.upload_url_ttl
        )


async def _in_thread(call: Callable[[], T], key: str) -> T:
    """A blocking S3 call off the event loop, its failures as the client should see them."""
    try:
        return await anyio.to_thread.run_sync(call)
    except ClientError as exc:
        code = str(exc.response.get("Error", {}).get("Code", ""))
        if code in ("NoSuchKey", "404", "NotFound"):
            raise NotFound(f"no object {key!r}") from None
        if code == "NoSuchUpload":
            raise NotFound(f"no upload in progress for {key!r} with this upload_id") from None
        if code in ("PreconditionFailed", "412", "ConditionalRequestConflict"):
            raise Conflict(f"{key!r} was written meanwhile: the upload does not replace it") from None
        if code in ("EntityTooSmall", "InvalidPart", "InvalidPartOrder"):
            raise Conflict(f"S3 refused the parts of {key!r} ({code})") from None
        raise Unavailable(f"storage refused the upload of {key!r} ({code or 'error'})") from None
    except BotoCoreError as exc:
        raise Unavailable(f"storage did not answer ({type(exc).__name__})") from None
