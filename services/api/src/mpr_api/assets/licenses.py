"""W3C ClearKey licences of cenc packages (https://www.w3.org/TR/encrypted-media/#clear-key).

A player's CDM asks with the EME licence request, ``{"kids": ["<base64url KID>", ...], "type":
"temporary"}``, POSTed to the licence URL its manifest names with the playback token in the query
(``/media/licenses/<package id>?token=…``, the same token as an AES-128 key URI's: bound to the
package, expiring with its signed link). The answer is a JSON Web Key set, ``{"keys": [{"kty": "oct",
"k": "<base64url key>", "kid": "<base64url KID>"}], "type": "temporary"}``, holding the package's key
only when its KID was asked for (a KID of another package, or made up, gets nothing).

A request is read for shape before anything else (a JSON object, at most ``MAX_KIDS`` KIDs, each 16
bytes of unpadded base64url, ``type`` absent or ``"temporary"``): anything else is a 400 with a message,
never a 500 (the tests throw arbitrary bodies at it)."""

from __future__ import annotations

import base64
import binascii
import json
import re

from mpr_common.content_keys import KID_BYTES
from mpr_common.errors import BadRequest

MAX_BODY = 4096  # a request for a few KIDs is well under 1 KiB
MAX_KIDS = 16
LICENSE_TYPE = "temporary"
_B64URL = re.compile(r"[A-Za-z0-9_-]{22}(?:==)?")


def b64url(data: bytes) -> str:
    """Unpadded base64url, as JSON Web Keys and EME write bytes."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def parse_license_request(body: bytes) -> list[bytes]:
    """The KIDs a licence request asks for. Raises :class:`BadRequest` with the reason."""
    if len(body) > MAX_BODY:
        raise BadRequest(f"a licence request is at most {MAX_BODY} bytes")
    try:
        request = json.loads(body)
    except (ValueError, RecursionError):
        raise BadRequest(
            'a licence request is JSON: {"kids": ["<base64url KID>"], "type": "temporary"}'
        ) from None
    if not isinstance(request, dict):
        raise BadRequest("a licence request is a JSON object")
    kind = request.get("type", LICENSE_TYPE)
    if kind != LICENSE_TYPE:
        raise BadRequest(f'only "{LICENSE_TYPE}" licences are issued')
    kids = request.get("kids")
    if not isinstance(kids, list) or not kids:
        raise BadRequest('a licence request names the KIDs it wants: "kids": ["<base64url KID>", ...]')
    if len(kids) > MAX_KIDS:
        raise BadRequest(f"a licence request names at most {MAX_KIDS} KIDs")
    out = []
    for kid in kids:
        if not isinstance(kid, str) or _B64URL.fullmatch(kid) is None:
            raise BadRequest(f"a KID is {KID_BYTES} bytes in base64url")
        try:
            out.append(base64.urlsafe_b64decode(kid[:22] + "=="))
        except (binascii.Error, ValueError):  # pragma: no cover - the pattern admits only base64url
            raise BadRequest(f"a KID is {KID_BYTES} bytes in base64url") from None
    return out


def license_response(asked: list[bytes], kid: bytes, key: bytes) -> dict[str, object]:
    """The JSON Web Key set answering ``asked``: the key when its KID is among them."""
    keys = [{"kty": "oct", "k": b64url(key), "kid": b64url(kid)}] if kid in asked else []
    return {"keys": keys, "type": LICENSE_TYPE}
