"""JSON request bodies, decoded the same way for REST and GraphQL: a body that is not JSON, not UTF-8
or nested too deeply is a 400 with the reason, never a 500. (msgspec raises ``UnicodeDecodeError``
and ``RecursionError`` for the last two, which Litestar does not turn into a 400 itself.)

Nesting is bounded by the interpreter's recursion limit (a depth of several hundred); no request body
of this API nests more than three levels, and the body size limit bounds the rest."""

from __future__ import annotations

from typing import Any

import msgspec
from litestar import Request
from litestar.exceptions import ClientException

from .limits import MAX_BODY_BYTES

NOT_UTF8 = "the request body is not valid UTF-8"
TOO_DEEP = "the request body is JSON nested too deeply"
TOO_LARGE = f"the request body is larger than {MAX_BODY_BYTES} bytes"


def decode_json_body(data: str | bytes) -> Any:
    """Untyped JSON, or a 400 that says what is wrong with it."""
    try:
        return msgspec.json.decode(data)
    except msgspec.DecodeError as exc:
        raise ClientException(f"the request body is not valid JSON: {exc}") from None
    except UnicodeDecodeError:
        raise ClientException(NOT_UTF8) from None
    except RecursionError:
        raise ClientException(TOO_DEEP) from None


class ApiRequest(Request[Any, Any, Any]):
    """Litestar's request, whose ``json()`` answers a 400 for every body it cannot decode."""

    async def json(self) -> Any:
        try:
            return await super().json()
        except UnicodeDecodeError:
            raise ClientException(NOT_UTF8) from None
        except RecursionError:
            raise ClientException(TOO_DEEP) from None
