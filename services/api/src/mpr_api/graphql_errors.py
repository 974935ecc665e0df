"""The one mapping of MPR's errors to GraphQL errors, for the core schema and every feature's fields:
the REST error's detail with its code (and, for a job the queue did not confirm, the job id to retry with)."""

from __future__ import annotations

from collections.abc import Awaitable
from typing import Any

import msgspec
from graphql import GraphQLError

from mpr_common.errors import BadRequest, MprError, NotFound

from .domain.jobs import JobNotConfirmed


async def call(coro: Awaitable[Any]) -> Any:
    """The same errors as REST, with their GraphQL code."""
    try:
        return await coro
    except MprError as exc:
        extensions: dict[str, Any] = {"code": exc.name}
        if isinstance(exc, JobNotConfirmed):
            extensions["jobId"] = exc.job_id  # retry with it: the job runs once
        raise GraphQLError(exc.detail, extensions=extensions) from None


async def maybe(coro: Awaitable[Any]) -> Any:
    """``None`` for a missing object, as GraphQL expects of a nullable field; other errors as in call."""
    try:
        return await call(coro)
    except GraphQLError as exc:
        if exc.extensions and exc.extensions.get("code") == NotFound.name:
            return None
        raise


def checked(value: Any, type_: Any, what: str) -> Any:
    """An argument checked against the bounds REST applies to the same value."""
    try:
        return msgspec.convert(value, type_)
    except msgspec.ValidationError as exc:
        raise GraphQLError(f"{what}: {exc}", extensions={"code": BadRequest.name}) from None
