"""The one exception hierarchy: raised by domain code, mapped once to HTTP and GraphQL, and carried
between services as a code (``Nats-Service-Error-Code``, as NATS services do), never as a string prefix."""

from __future__ import annotations

ERROR_CODE_HEADER = "Nats-Service-Error-Code"
ERROR_HEADER = "Nats-Service-Error"


class MprError(Exception):
    """Base of every error a client may see; ``code`` is the HTTP status it maps to."""

    code = 500
    name = "INTERNAL"  # the GraphQL error code

    @property
    def detail(self) -> str:
        return str(self) or type(self).__name__


class BadRequest(MprError):
    name = "BAD_REQUEST"
    code = 400


class Unauthorized(MprError):
    name = "UNAUTHENTICATED"
    code = 401


class NotFound(MprError):
    name = "NOT_FOUND"
    code = 404


class Conflict(MprError):
    name = "CONFLICT"
    code = 409


class Unavailable(MprError):
    """A service or the broker did not answer; the request may be retried."""

    code = 503
    name = "UNAVAILABLE"


_BY_CODE: dict[int, type[MprError]] = {
    c.code: c for c in (BadRequest, Unauthorized, NotFound, Conflict, Unavailable)
}


def error_headers(exc: MprError) -> dict[str, str]:
    # Header values are one line: NATS headers cannot carry a newline.
    return {ERROR_CODE_HEADER: str(exc.code), ERROR_HEADER: exc.detail.replace("\r", " ").replace("\n", " ")}


def error_from_headers(headers: dict[str, str] | None) -> MprError | None:
    if not headers or ERROR_CODE_HEADER not in headers:
        return None
    try:
        code = int(headers[ERROR_CODE_HEADER])
    except ValueError:
        code = 500
    return _BY_CODE.get(code, MprError)(headers.get(ERROR_HEADER, ""))
