"""The GraphQL schema: the Query, Mutation and Subscription fields of every feature, in the order of
the features, merged into one schema with the API's limits and its masking of unexpected errors."""

from __future__ import annotations

from collections.abc import Sequence
from functools import partial
from typing import Any

import strawberry
from graphql import GraphQLError
from strawberry.extensions import MaskErrors
from strawberry.tools import merge_types

from ..feature import Feature
from .limits import schema_extensions


def build_schema(features: Sequence[Feature]) -> strawberry.Schema:
    """One schema of the features' fields (a merged type lists its fields in the features' order)."""

    def merged(name: str, attr: str) -> Any:
        types = tuple(t for t in (getattr(f, attr) for f in features) if t is not None)
        return merge_types(name, types) if len(types) > 1 else (types[0] if types else None)

    return strawberry.Schema(
        query=merged("Query", "graphql_query"),
        mutation=merged("Mutation", "graphql_mutation"),
        subscription=merged("Subscription", "graphql_subscription"),
        extensions=[
            *schema_extensions(),
            partial(MaskErrors, should_mask_error=_unexpected, error_message=INTERNAL_ERROR),
        ],
    )


INTERNAL_ERROR = "internal error"  # as REST's 500: what a bug raised is logged, never shown


def _unexpected(error: GraphQLError) -> bool:
    """A resolver's error (it has a path) that MPR did not raise on purpose: MPR's are GraphQLErrors
    (graphql/errors.py). Errors before execution (parse, validation, coercion of arguments, limits)
    have no path and say what is wrong with the request."""
    original = error.original_error
    return error.path is not None and original is not None and not isinstance(original, GraphQLError)
