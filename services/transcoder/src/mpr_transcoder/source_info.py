"""The catalog's probe of a source, read back from JetStream instead of running ffprobe again.

The catalog publishes one ``AssetRegistered`` per object on ``asset_subject(bucket, key)`` in a stream
that keeps the latest message of each subject and answers direct gets: one request, no consumer.
"""

from __future__ import annotations

import asyncio
import logging

from nats.errors import Error as NatsError
from nats.js import JetStreamContext

from mpr_common.codec import DecodeError, ValidationError, decode
from mpr_common.events import AssetRegistered, MediaInfo
from mpr_common.subjects import ASSETS_STREAM, asset_subject

log = logging.getLogger("mpr.transcoder")


async def catalog_probe(
    js: JetStreamContext, bucket: str, key: str, etag: str, *, timeout: float = 1.0
) -> MediaInfo | None:
    """The catalog's ``MediaInfo`` of ``bucket/key`` if it was probed at this very ``etag``, else None.

    Never raises: whatever goes wrong (not registered yet, another version of the object, NATS down,
    a message this version cannot read), the caller probes the source itself. ``timeout`` is short
    because probing costs about 0.1 s: a stuck broker costs a job at most ``timeout``.
    """
    try:
        msg = await asyncio.wait_for(
            js.get_last_msg(ASSETS_STREAM, asset_subject(bucket, key), direct=True), timeout
        )
        event = decode(msg.data or b"", AssetRegistered)
    except (NatsError, TimeoutError) as exc:  # nats.js' NotFoundError is a nats.errors.Error
        log.debug("no catalog probe for %s/%s: %r", bucket, key, exc)
        return None
    except (DecodeError, ValidationError) as exc:
        log.debug("unreadable catalog probe for %s/%s: %s", bucket, key, exc)
        return None
    # The etag ties the probe to the bytes FFmpeg will read: an object overwritten since it was
    # registered (or an event for another bucket/key, whose digest collided) must be probed again.
    if event.etag != etag or event.bucket != bucket or event.key != key:
        return None
    return event.info
