"""MinIO bucket notifications (S3 event JSON) → object events. Pure, unit-tested.

MinIO URL-encodes object keys in records the way S3 does: spaces as ``+``, ``/`` as ``%2F``.
"""

from __future__ import annotations

from datetime import datetime
from urllib.parse import unquote_plus

import msgspec

from mpr_common.events import ObjectFound, ObjectRemoved
from mpr_common.keys import InvalidKeyError, is_media_key, validate_key


class _Bucket(msgspec.Struct):
    name: str


class _Object(msgspec.Struct):
    key: str
    size: int = 0
    eTag: str = ""  # noqa: N815 - S3 wire name
    sequencer: str = ""


class _S3(msgspec.Struct):
    bucket: _Bucket
    object: _Object


class _Record(msgspec.Struct):
    eventName: str  # noqa: N815
    s3: _S3
    eventTime: str | None = None  # noqa: N815


class S3Notification(msgspec.Struct):
    Records: list[_Record] = msgspec.field(default_factory=list)  # noqa: N815
    EventName: str | None = None  # noqa: N815
    Key: str | None = None  # noqa: N815


_decoder = msgspec.json.Decoder(S3Notification)


def _time(value: str | None) -> float | None:
    if not value:
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


def translate(payload: bytes, bucket_in: str) -> list[ObjectFound | ObjectRemoved]:
    """Events for the media objects of ``bucket_in`` in one notification; others are ignored.

    Raises ``msgspec.DecodeError``/``ValidationError`` for payloads that are not S3 event JSON.
    """
    note = _decoder.decode(payload)
    out: list[ObjectFound | ObjectRemoved] = []
    for rec in note.Records:
        if rec.s3.bucket.name != bucket_in:
            continue
        key = unquote_plus(rec.s3.object.key)
        try:
            validate_key(key)
        except InvalidKeyError:
            continue
        if not is_media_key(key):
            continue
        if rec.eventName.startswith("s3:ObjectCreated:"):
            out.append(
                ObjectFound(
                    bucket=bucket_in,
                    key=key,
                    size=rec.s3.object.size,
                    etag=rec.s3.object.eTag.strip('"'),
                    last_modified=_time(rec.eventTime),
                    source="notification",
                )
            )
        elif rec.eventName.startswith("s3:ObjectRemoved:"):
            out.append(ObjectRemoved(bucket=bucket_in, key=key, source="notification"))
    return out
