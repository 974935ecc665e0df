"""The bounds of a GraphQL list's page: the same as REST's ``?limit=&offset=``."""

from __future__ import annotations

from graphql import GraphQLError

from mpr_common.errors import BadRequest

from ..http.limits import MAX_OFFSET, MAX_PAGE


def check_page(limit: int, offset: int) -> None:
    if not (1 <= limit <= MAX_PAGE) or not (0 <= offset <= MAX_OFFSET):
        raise GraphQLError(
            f"limit must be 1-{MAX_PAGE} and offset 0-{MAX_OFFSET}", extensions={"code": BadRequest.name}
        )
