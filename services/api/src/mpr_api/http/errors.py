"""How an error becomes a response: MPR's errors with their code and detail (and what they add, such as
the job id to retry with), Litestar's with a detail that says what is wrong, anything else a logged 500."""

from __future__ import annotations

import logging

from litestar import Request, Response
from litestar.exceptions import HTTPException, ValidationException
from litestar.exceptions.http_exceptions import RequestEntityTooLarge
from litestar.types import ExceptionHandlersMap

from mpr_common.errors import MprError

from .bodies import TOO_LARGE

log = logging.getLogger("mpr.api")


_MAX_REASON_CHARS = 300  # of each reason a validation error quotes (it may quote the client's input)


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


def _internal_error(request: Request, exc: Exception) -> Response:
    if isinstance(exc, HTTPException):
        body = {"status_code": exc.status_code, "detail": _http_detail(exc)}
        if exc.extra:
            body["extra"] = exc.extra
        return Response(body, status_code=exc.status_code, headers=exc.headers)
    log.exception("unhandled error on %s %s", request.method, request.url.path)
    return Response({"status_code": 500, "detail": "internal error"}, status_code=500)


EXCEPTION_HANDLERS: ExceptionHandlersMap = {MprError: _domain_error, Exception: _internal_error}
