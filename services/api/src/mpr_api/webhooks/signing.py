"""Standard Webhooks signatures (https://www.standardwebhooks.com): the HMAC-SHA256 of
``<webhook-id>.<webhook-timestamp>.<body>`` under the subscription's secret, sent as
``webhook-signature: v1,<base64>``. Several signatures separated by spaces are sent while a rotated-out
secret is still valid, so a receiver may switch secrets at its own pace.

``verify`` is what a receiver does (the tests use it as one); the timestamp check is what makes a
captured request useless for a replay once the tolerance has passed."""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets
import time
from collections.abc import Iterable, Mapping

SECRET_PREFIX = "whsec_"
SECRET_BYTES = 32
VERSION = "v1"
DEFAULT_TOLERANCE = 300.0  # seconds either side of the receiver's clock

ID_HEADER = "webhook-id"
TIMESTAMP_HEADER = "webhook-timestamp"
SIGNATURE_HEADER = "webhook-signature"


class InvalidSignature(ValueError):
    """The request was not signed with the secret, or is too old or too new (a replay)."""


def new_secret() -> str:
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(SECRET_BYTES)).decode()


def _key(secret: str) -> bytes:
    try:
        return base64.b64decode(secret.removeprefix(SECRET_PREFIX), validate=True)
    except binascii.Error:
        raise ValueError("a webhook secret is whsec_ followed by base64") from None


def signature(secret: str, msg_id: str, timestamp: int, body: bytes) -> str:
    """``v1,<base64 HMAC-SHA256(secret, "<id>.<timestamp>.<body>")>``."""
    signed = f"{msg_id}.{timestamp}.".encode() + body
    mac = hmac.new(_key(secret), signed, hashlib.sha256).digest()
    return f"{VERSION},{base64.b64encode(mac).decode()}"


def signed_headers(secrets_: Iterable[str], msg_id: str, timestamp: int, body: bytes) -> dict[str, str]:
    """The three headers of a delivery, signed with each of ``secrets_`` (current first)."""
    return {
        ID_HEADER: msg_id,
        TIMESTAMP_HEADER: str(timestamp),
        SIGNATURE_HEADER: " ".join(signature(s, msg_id, timestamp, body) for s in secrets_),
    }


def verify(
    secret: str,
    headers: Mapping[str, str],
    body: bytes,
    tolerance: float = DEFAULT_TOLERANCE,
    now: float | None = None,
) -> str:
    """Check a delivery as a receiver must: the timestamp within ``tolerance`` of ``now`` (refuses
    replays of old requests), then one ``v1`` signature equal, in constant time, to the one computed
    over the exact body bytes. Returns the webhook-id (receivers de-duplicate on it); raises
    :class:`InvalidSignature`."""
    h = {k.lower(): v for k, v in headers.items()}
    msg_id, stamp, sent = h.get(ID_HEADER), h.get(TIMESTAMP_HEADER), h.get(SIGNATURE_HEADER)
    if not (msg_id and stamp and sent):
        raise InvalidSignature("missing webhook-id, webhook-timestamp or webhook-signature")
    try:
        timestamp = int(stamp)
    except ValueError:
        raise InvalidSignature("webhook-timestamp is not an integer") from None
    if abs((time.time() if now is None else now) - timestamp) > tolerance:
        raise InvalidSignature("webhook-timestamp is outside the tolerance (a replay, or a skewed clock)")
    expected = signature(secret, msg_id, timestamp, body).partition(",")[2]
    for candidate in sent.split():
        version, _, value = candidate.partition(",")
        if version == VERSION and hmac.compare_digest(value.encode(), expected.encode()):
            return msg_id
    raise InvalidSignature("no signature matches")
