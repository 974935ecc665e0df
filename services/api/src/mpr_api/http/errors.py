"""How an error becomes a response: MPR's errors with their code and detail (and what they add, such as
the job id to retry with), Litestar's with a detail that says what is wrong, anything else a logged 500."""

from __future__ import annotations

import logging
import re

from litestar import Request, Response
from litestar.exceptions import HTTPException, ValidationException
from litestar.exceptions.http_exceptions import RequestEntityTooLarge
from litestar.types import ExceptionHandlersMap

from mpr_common.errors import MprError

from .bodies import TOO_LARGE

log = logging.getLogger("mpr.api")


_MAX_REASON_CHARS = 300  # of each reason a validation error quotes (it may quote the client's input)
_FIELD = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")  # the top-level field of a key such as "output_keys[2]"


def _domain_error(_request: Request, exc: MprError) -> Response:
    body = {"status_code": exc.code, "detail": exc.detail, **getattr(exc, "extra", {})}
    return Response(body, status_code=exc.code)


def _http_detail(exc: HTTPException) -> str:
    if isinstance(exc, RequestEntityTooLarge):
        return TOO_LARGE
    if isinstance(exc, ValidationException) and isinstance(exc.extra, list):
        # "Validation failed for POST /api/jobs" says nothing: name each field and what is wrong
        reasons = [
            (
                str(e.get("message", ""))
                if e.get("key") in (None, "data")
                else f"{e['key']}: {e.get('message', '')}"
            )[:_MAX_REASON_CHARS]
            for e in exc.extra[:10]
            if isinstance(e, dict)
        ]
        if reasons:
            return f"{exc.detail}: {'; '.join(reasons)}"
    return exc.detail


def validation_field(exc: HTTPException) -> str | None:
    """The field a validation error names first (a body's field, a query or path parameter), or None
    when it concerns the body as a whole."""
    if not isinstance(exc, ValidationException) or not isinstance(exc.extra, list):
        return None
    for e in exc.extra:
        key = e.get("key") if isinstance(e, dict) else None
        if isinstance(key, str) and key != "data":
            m = _FIELD.match(key)
            return m.group(0) if m else None
    return None


def _internal_error(request: Request, exc: Exception) -> Response:
    if isinstance(exc, HTTPException):
        body = {"status_code": exc.status_code, "detail": _http_detail(exc)}
        field = validation_field(exc)
        if field:
            body["field"] = field
        if exc.extra:
            body["extra"] = exc.extra
        return Response(body, status_code=exc.status_code, headers=exc.headers)
    log.exception("unhandled error on %s %s", request.method, request.url.path)
    return Response({"status_code": 500, "detail": "internal error"}, status_code=500)


EXCEPTION_HANDLERS: ExceptionHandlersMap = {MprError: _domain_error, Exception: _internal_error}
