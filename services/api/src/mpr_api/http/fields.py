"""The bounded field types every domain's request bodies and arguments use (REST and GraphQL alike),
and the shape of a page of a list."""

from __future__ import annotations

from typing import Annotated

import msgspec

from .limits import MAX_ID_CHARS, MAX_KEY_CHARS

ID_PATTERN = "^[A-Za-z0-9_-]+$"  # job and scan ids
ASSET_ID_PATTERN = "^[0-9a-f]{32}$"

# Every string of a request body or argument is bounded (limits.py): with MAX_BODY_BYTES, nothing the
# API accepts can make an event larger than NATS's max payload.
Key = Annotated[str, msgspec.Meta(min_length=1, max_length=MAX_KEY_CHARS)]
KeyPrefix = Annotated[str, msgspec.Meta(max_length=MAX_KEY_CHARS)]
JobId = Annotated[str, msgspec.Meta(min_length=1, max_length=MAX_ID_CHARS, pattern=ID_PATTERN)]
AssetId = Annotated[str, msgspec.Meta(min_length=32, max_length=32, pattern=ASSET_ID_PATTERN)]


class Page(msgspec.Struct, kw_only=True):
    total: int
    limit: int
    offset: int


class ErrorBody(msgspec.Struct):
    status_code: int
    detail: str
