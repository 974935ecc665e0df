"""GraphQL over HTTP at /graphql: Strawberry's Litestar controller, with what a request may cost
bounded before Strawberry spends anything on it.

- The body: the app's MAX_BODY_BYTES (413), decoded like REST bodies (400 for bad JSON, not UTF-8,
  nested too deeply). The document: at most GRAPHQL_MAX_QUERY_BYTES, checked before parsing (413).
  These refusals come before there is a GraphQL request, so they have the API's ``{status_code,
  detail}`` body, as do Strawberry's own refusals (unsupported content type, no query, …).
- Tokens, depth, aliases and list items: ``graphql_limits.py``; a refused operation is a GraphQL
  request error (``errors`` and no data). As the GraphQL-over-HTTP spec asks, it is a 400 for a
  client that accepts ``application/graphql-response+json``, and a 200 with ``"data": null`` for
  ``application/json`` (the default, which clients may not trust on a non-200 status).
- WebSocket (graphql-transport-ws only) carries subscriptions (`jobEvents`): the same schema extensions
  bound each operation (tokens, depth, aliases, list items), and the handshake needs the bearer token
  (auth.py). The document-size check above applies to HTTP only; over a WebSocket the token limit stops
  the parser.
"""

from __future__ import annotations

from typing import Any

from cross_web import HTTPException as StrawberryHTTPError
from litestar import Controller, Request, Response
from litestar.exceptions import HTTPException
from strawberry.http import GraphQLHTTPResponse
from strawberry.litestar import make_graphql_controller
from strawberry.schema import BaseSchema
from strawberry.types import ExecutionResult

from .bodies import decode_json_body
from .limits import GRAPHQL_MAX_QUERY_BYTES

GRAPHQL_RESPONSE = "application/graphql-response+json"
_MEDIA_TYPES = ["application/json", GRAPHQL_RESPONSE]  # application/json first: what */* gets


def is_request_error(result: ExecutionResult) -> bool:
    """Refused before execution (parse, validation, limits): no data and no error with a path."""
    errors = result.errors or []
    return result.data is None and bool(errors) and all(e.path is None for e in errors)


def _wants_graphql_response(request: Request[Any, Any, Any]) -> bool:
    return request.accept.best_match(_MEDIA_TYPES, default="application/json") == GRAPHQL_RESPONSE


def graphql_controller(schema: BaseSchema, path: str = "/graphql") -> type[Controller]:
    base: Any = make_graphql_controller(
        schema, path=path, graphql_ide="graphiql", subscription_protocols=("graphql-transport-ws",)
    )

    class GraphQLController(base):
        def decode_json(self, data: str | bytes) -> object:
            return decode_json_body(data)

        async def execute_single(self, **kwargs: Any) -> ExecutionResult:
            query = kwargs["request_data"].query
            if query and len(query) * 4 > GRAPHQL_MAX_QUERY_BYTES:  # else it cannot be too long
                size = len(query.encode("utf-8", "surrogatepass"))
                if size > GRAPHQL_MAX_QUERY_BYTES:
                    raise HTTPException(
                        status_code=413,
                        detail=f"the GraphQL query is {size} bytes; at most {GRAPHQL_MAX_QUERY_BYTES} are accepted",
                    )
            return await super().execute_single(**kwargs)

        async def process_result(
            self, request: Request[Any, Any, Any], result: ExecutionResult
        ) -> GraphQLHTTPResponse:
            data = await super().process_result(request, result)
            if is_request_error(result) and _wants_graphql_response(request):
                data.pop("data", None)  # a request error has no data entry
                request.state.graphql_request_error = True
            return data

        async def execute_request(
            self, request: Request[Any, Any, Any], context: Any, root_value: Any
        ) -> Response:
            try:
                response = await self.run(request, context=context, root_value=root_value)
            except StrawberryHTTPError as exc:  # Strawberry's own refusals, as the API's errors
                return Response(
                    {"status_code": exc.status_code, "detail": exc.reason}, status_code=exc.status_code
                )
            if response.media_type == "application/json" and _wants_graphql_response(request):
                response.media_type = GRAPHQL_RESPONSE
                if request.state.get("graphql_request_error"):
                    response.status_code = 400
            return response

    return GraphQLController
