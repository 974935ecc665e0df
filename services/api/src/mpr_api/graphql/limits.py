"""What one GraphQL operation may ask for (values in ``limits.py``): the document's size is checked
by the HTTP view before parsing (``graphql_http.py``); here, Strawberry's limiters stop the parser at
GRAPHQL_MAX_TOKENS and refuse, while validating, an operation deeper than GRAPHQL_MAX_DEPTH or with
more than GRAPHQL_MAX_ALIASES aliases (graphql-core's own rules also bound introspection's depth);
:class:`ListItemsLimiter` refuses, before anything runs, an operation whose list fields ask for more
than GRAPHQL_MAX_ITEMS items together. A refused operation is a request error (no ``data``)."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from functools import partial
from typing import Any

from graphql import (
    DocumentNode,
    ExecutionResult,
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLArgument,
    GraphQLError,
    GraphQLSchema,
    InlineFragmentNode,
    IntValueNode,
    OperationDefinitionNode,
    OperationType,
    SelectionSetNode,
    ValueNode,
    VariableNode,
)
from graphql.utilities import get_operation_ast
from strawberry.extensions import MaxAliasesLimiter, MaxTokensLimiter, QueryDepthLimiter, SchemaExtension

from ..http import limits as L

QUERY_TOO_LARGE = "QUERY_TOO_LARGE"  # the GraphQL error code of a refused operation


class ListItemsLimiter(SchemaExtension):
    """Refuse an operation whose list fields (the root fields with a ``limit`` argument: ``jobs``
    and ``assets``) ask for more than ``max_items`` items in total, aliases and fragments included,
    before any of them is resolved. Each field's own limit (at most MAX_PAGE) is checked by it."""

    def __init__(self, *, max_items: int) -> None:
        self.max_items = max_items

    def on_execute(self) -> Iterator[None]:
        ec = self.execution_context
        if ec.graphql_document is not None and ec.result is None:
            asked = requested_items(
                ec.schema._schema, ec.graphql_document, ec.operation_name, ec.variables or {}
            )
            if asked > self.max_items:
                message = (
                    f"this operation asks for {asked} list items; at most {self.max_items} are allowed in "
                    "one request (the limit arguments of all jobs and assets fields, added up)"
                )
                ec.result = ExecutionResult(
                    None, [GraphQLError(message, extensions={"code": QUERY_TOO_LARGE})]
                )
        yield


SUBSCRIPTIONS_OVER_WEBSOCKET = "subscriptions run over WebSocket: graphql-transport-ws at /graphql"


class SubscriptionsOverWebSocket(SchemaExtension):
    """A subscription sent over HTTP is refused with a message (Strawberry would run its generator as a
    plain field and fail): subscriptions stream over graphql-transport-ws only."""

    def on_execute(self) -> Iterator[None]:
        ec = self.execution_context
        context = ec.context
        over_websocket = isinstance(context, dict) and "socket" in context
        if ec.result is None and not over_websocket and _is_subscription(ec):
            ec.result = ExecutionResult(
                None, [GraphQLError(SUBSCRIPTIONS_OVER_WEBSOCKET, extensions={"code": "BAD_REQUEST"})]
            )
        yield


def _is_subscription(ec: Any) -> bool:
    try:
        return bool(ec.operation_type.value == OperationType.SUBSCRIPTION.value)  # Strawberry's enum
    except Exception:  # no operation to name (Strawberry reports that itself)
        return False


def requested_items(
    schema: GraphQLSchema, document: DocumentNode, operation_name: str | None, variables: Mapping[str, Any]
) -> int:
    """The items an operation's root list fields ask for: each distinct response key once (fields
    that share one are merged into one call), with the limit given, from a variable, or the default."""
    operation = get_operation_ast(document, operation_name)
    if operation is None:
        return 0
    root = schema.get_root_type(operation.operation)
    if root is None:
        return 0
    total = 0
    for node in _root_fields(document, operation.selection_set).values():
        definition = root.fields.get(node.name.value)
        if definition is not None and "limit" in definition.args:
            asked = _argument(node, "limit", definition.args["limit"], operation, variables)
            if isinstance(asked, int) and not isinstance(asked, bool):
                total += min(max(asked, 0), L.MAX_PAGE)
    return total


def _root_fields(document: DocumentNode, selection_set: SelectionSetNode) -> dict[str, FieldNode]:
    """The root fields by response key (the first of those that share one), through fragments."""
    fragments = {d.name.value: d for d in document.definitions if isinstance(d, FragmentDefinitionNode)}
    fields: dict[str, FieldNode] = {}
    seen_fragments: set[str] = set()
    pending: list[SelectionSetNode] = [selection_set]
    while pending:
        for selection in pending.pop().selections:
            if isinstance(selection, FieldNode):
                fields.setdefault(
                    selection.alias.value if selection.alias else selection.name.value, selection
                )
            elif isinstance(selection, InlineFragmentNode):
                pending.append(selection.selection_set)
            elif isinstance(selection, FragmentSpreadNode):
                name = selection.name.value
                if name not in seen_fragments and name in fragments:
                    seen_fragments.add(name)
                    pending.append(fragments[name].selection_set)
    return fields


def _argument(
    node: FieldNode,
    name: str,
    definition: GraphQLArgument,
    operation: OperationDefinitionNode,
    variables: Mapping[str, Any],
) -> Any:
    for arg in node.arguments or ():
        if arg.name.value != name:
            continue
        value: ValueNode | None = arg.value
        if isinstance(value, VariableNode):
            var = value.name.value
            if var in variables:
                return variables[var]
            defaults = {d.variable.name.value: d.default_value for d in operation.variable_definitions or ()}
            if defaults.get(var) is None:
                break  # an argument whose variable is not given is not given
            value = defaults[var]
        if not isinstance(value, IntValueNode):
            return None
        # graphql-core lets any number of digits through the parser (Int's 32 bits are checked later);
        # one too long for int() counts as more than any limit
        digits = value.value.lstrip("-")
        if len(digits) > 18:
            return -L.MAX_PAGE if value.value.startswith("-") else L.MAX_PAGE
        return int(value.value)
    return definition.default_value


def schema_extensions() -> list[Callable[[], SchemaExtension]]:
    """Factories: Strawberry makes one of each per operation."""
    return [
        partial(MaxTokensLimiter, max_token_count=L.GRAPHQL_MAX_TOKENS),
        partial(QueryDepthLimiter, max_depth=L.GRAPHQL_MAX_DEPTH),
        partial(MaxAliasesLimiter, max_alias_count=L.GRAPHQL_MAX_ALIASES),
        partial(ListItemsLimiter, max_items=L.GRAPHQL_MAX_ITEMS),
        SubscriptionsOverWebSocket,
    ]
