"""The one mapping of MPR's errors to GraphQL errors, for every domain's fields: the REST error's detail
with its code, and what the error adds for GraphQL (``graphql_extensions``: a job the queue did not
confirm names the job id to retry with)."""

from __future__ import annotations

import re
from collections.abc import Awaitable
from typing import Any

import msgspec
from graphql import GraphQLError

from mpr_common.errors import BadRequest, MprError, NotFound

from ..http.field_errors import graphql_name

_AT_FIELD = re.compile(r"- at `\$\.([A-Za-z_][A-Za-z0-9_]*)")  # msgspec's path of what is wrong


async def call(coro: Awaitable[Any]) -> Any:
    """The same errors as REST, with their GraphQL code."""
    try:
        return await coro
    except MprError as exc:
        extensions: dict[str, Any] = {"code": exc.name}
        extensions.update(getattr(exc, "graphql_extensions", {}))  # e.g. the job id to retry with
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
    """An argument checked against the bounds REST applies to the same value. The error names the
    field: the argument ``what``, or the field of an input object that is wrong."""
    try:
        return msgspec.convert(value, type_)
    except msgspec.ValidationError as exc:
        inner = _AT_FIELD.search(str(exc))
        field = graphql_name(inner.group(1)) if inner else what
        raise GraphQLError(f"{what}: {exc}", extensions={"code": BadRequest.name, "field": field}) from None
