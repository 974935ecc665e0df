import json

import msgspec
import pytest

from mpr_common.events import ObjectFound, ObjectRemoved
from mpr_scanner.minio_events import translate


def note(event: str, key: str, bucket: str = "mpr-media-in") -> bytes:
    return json.dumps(
        {
            "EventName": event,
            "Key": f"{bucket}/{key}",
            "Records": [
                {
                    "eventVersion": "2.0",
                    "eventSource": "minio:s3",
                    "eventTime": "2026-11-24T10:00:00.000Z",
                    "eventName": event,
                    "s3": {
                        "s3SchemaVersion": "1.0",
                        "bucket": {"name": bucket, "arn": f"arn:aws:s3:::{bucket}"},
                        "object": {
                            "key": key,
                            "size": 1234,
                            "eTag": "d41d8cd98f00b204e9800998ecf8427e",
                            "contentType": "video/mp4",
                            "sequencer": "17",
                        },
                    },
                }
            ],
        }
    ).encode()


def test_created_key_is_url_decoded():
    (ev,) = translate(note("s3:ObjectCreated:Put", "sub%2Fmy+video+%281%29.mp4"), "mpr-media-in")
    assert isinstance(ev, ObjectFound)
    assert ev.key == "sub/my video (1).mp4"
    assert (ev.size, ev.etag, ev.source) == (1234, "d41d8cd98f00b204e9800998ecf8427e", "notification")
    assert ev.last_modified is not None


def test_removed_and_multipart():
    (ev,) = translate(note("s3:ObjectRemoved:Delete", "a.mkv"), "mpr-media-in")
    assert isinstance(ev, ObjectRemoved) and ev.key == "a.mkv"
    (ev,) = translate(note("s3:ObjectCreated:CompleteMultipartUpload", "big.mov"), "mpr-media-in")
    assert isinstance(ev, ObjectFound)


@pytest.mark.parametrize(
    "key,bucket",
    [
        ("notes.txt", "mpr-media-in"),  # not media
        ("a.mp4", "other-bucket"),  # not our bucket
        ("..%2F..%2Fetc%2Fpasswd.mp4", "mpr-media-in"),  # traversal
        ("%2Fabs.mp4", "mpr-media-in"),  # absolute
    ],
)
def test_ignored(key, bucket):
    assert translate(note("s3:ObjectCreated:Put", key, bucket), "mpr-media-in") == []


def test_not_s3_event_json():
    with pytest.raises((msgspec.DecodeError, msgspec.ValidationError)):
        translate(b"not json", "mpr-media-in")
    with pytest.raises(msgspec.ValidationError):
        translate(b'{"Records": [{"eventName": 3}]}', "mpr-media-in")
