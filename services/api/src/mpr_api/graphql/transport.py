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
- A body that is JSON but not an object (``null``, ``"x"``, ``1``) is a 400 that says so; an array is
  Strawberry's 400 (batching is off); wrong types of ``query``, ``variables``, ``extensions`` are its 400s.
- WebSocket (graphql-transport-ws only) carries subscriptions (`jobEvents`) and, as the protocol allows,
  queries and mutations too: they run as over HTTP (the same context, so the same resolvers), bounded
  the same way (the document's size here, then tokens, depth, aliases and list items), and the handshake
  needs the bearer token (auth.py; never the console's cookie). A subscribe message whose payload is not
  ``{query: string, variables?: object, operationName?: string}`` gets an ``error`` for its id.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator
from typing import Any, cast

from cross_web import HTTPException as StrawberryHTTPError
from graphql import GraphQLError
from litestar import Controller, Request, Response
from litestar.exceptions import ClientException, HTTPException, WebSocketDisconnect
from strawberry.http import GraphQLHTTPResponse
from strawberry.http.exceptions import NonJsonMessageReceived, NonTextMessageReceived
from strawberry.litestar import make_graphql_controller
from strawberry.litestar.controller import LitestarWebSocketAdapter
from strawberry.schema import BaseSchema
from strawberry.subscriptions.protocols.graphql_transport_ws.handlers import BaseGraphQLTransportWSHandler
from strawberry.subscriptions.protocols.graphql_transport_ws.types import (
    CompleteMessage,
    Message,
    SubscribeMessage,
)
from strawberry.types import ExecutionResult

from ..http.bodies import decode_json_body
from ..http.limits import GRAPHQL_MAX_QUERY_BYTES

GRAPHQL_RESPONSE = "application/graphql-response+json"
_MEDIA_TYPES = ["application/json", GRAPHQL_RESPONSE]  # application/json first: what */* gets
NOT_AN_OBJECT = (
    'a GraphQL request body is a JSON object: {"query": "…", "variables": {…}, "operationName": "…"}'
)
_JSON_WHITESPACE = b" \t\r\n"


def query_too_large(query: str) -> str | None:
    """Why a document is refused before it is parsed (over GRAPHQL_MAX_QUERY_BYTES), or None."""
    if len(query) * 4 <= GRAPHQL_MAX_QUERY_BYTES:  # cannot be too long
        return None
    size = len(query.encode("utf-8", "surrogatepass"))
    if size <= GRAPHQL_MAX_QUERY_BYTES:
        return None
    return f"the GraphQL query is {size} bytes; at most {GRAPHQL_MAX_QUERY_BYTES} are accepted"


def subscribe_payload_error(payload: object) -> str | None:
    """Why a graphql-transport-ws ``subscribe`` payload cannot run, or None."""
    if not isinstance(payload, dict):
        return "the subscribe message's payload is an object: {query, variables?, operationName?}"
    query = payload.get("query")
    if not isinstance(query, str):
        return "the subscribe message's payload needs its query as a string"
    if not isinstance(payload.get("variables"), dict | None):
        return "the subscribe message's variables are an object (or null)"
    if not isinstance(payload.get("operationName"), str | None):
        return "the subscribe message's operationName is a string (or null)"
    if not isinstance(payload.get("extensions"), dict | None):
        return "the subscribe message's extensions are an object (or null)"
    return query_too_large(query)


class WebSocketAdapter(LitestarWebSocketAdapter):
    """Strawberry's Litestar adapter, decoding frames like request bodies: a frame that is not JSON
    (or not UTF-8, or nested too deeply) closes the connection with 4400, as the protocol says."""

    async def iter_json(self, *, ignore_parsing_errors: bool = False) -> AsyncGenerator[object, None]:
        try:
            while self.ws.connection_state != "disconnect":
                text = await self.ws.receive_text()
                if text == "":  # Litestar's text for a binary frame
                    raise NonTextMessageReceived
                try:
                    yield decode_json_body(text)
                except ClientException as exc:
                    if not ignore_parsing_errors:
                        raise NonJsonMessageReceived from exc
        except WebSocketDisconnect:
            pass


class TransportWSHandler(BaseGraphQLTransportWSHandler[Any, Any]):
    """graphql-transport-ws with the HTTP view's context (``request`` is the socket, which has the same
    ``app``) and its checks of a request's form and size before the schema sees it."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if isinstance(self.context, dict) and "socket" in self.context:
            self.context.setdefault("request", self.context["socket"])

    async def handle_message(self, message: Any) -> None:
        if not isinstance(message, dict):
            await self.handle_invalid_message("a graphql-transport-ws message is a JSON object with a type")
            return
        await super().handle_message(cast("Message", message))

    async def handle_complete(self, message: CompleteMessage) -> None:
        if not isinstance(message.get("id"), str):
            await self.handle_invalid_message("a complete message needs its id as a string")
            return
        await super().handle_complete(message)

    async def handle_subscribe(self, message: SubscribeMessage) -> None:
        op_id = message.get("id")
        if not isinstance(op_id, str):
            await self.handle_invalid_message("a subscribe message needs its id as a string")
            return
        reason = subscribe_payload_error(message.get("payload"))
        if reason is not None:
            if self.connection_acknowledged and op_id not in self.operations:
                error = GraphQLError(reason, extensions={"code": "BAD_REQUEST"})
                await self.send_message({"id": op_id, "type": "error", "payload": [error.formatted]})
                return
        await super().handle_subscribe(message)


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
        graphql_transport_ws_handler_class = TransportWSHandler
        websocket_adapter_class = WebSocketAdapter

        def decode_json(self, data: str | bytes) -> object:
            return decode_json_body(data)

        async def parse_http_body(self, request: Any) -> Any:
            await _refuse_non_objects(request)
            return await super().parse_http_body(request)

        async def execute_single(self, **kwargs: Any) -> ExecutionResult:
            query = kwargs["request_data"].query
            reason = query_too_large(query) if query else None
            if reason is not None:
                raise HTTPException(status_code=413, detail=reason)
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
            _mark_graphql_response(request, response)
            return response

    return GraphQLController


async def _refuse_non_objects(request: Any) -> None:
    if request.method != "GET" and "application/json" in (request.content_type or ""):
        # A JSON value's first character says what it is: anything but an object (or an array,
        # refused by Strawberry as a batch) would reach Strawberry's ``data.get`` as a 500.
        first = (await request.get_body()).lstrip(_JSON_WHITESPACE)[:1]
        if first not in (b"{", b"["):
            raise StrawberryHTTPError(400, NOT_AN_OBJECT)


def _mark_graphql_response(request: Request[Any, Any, Any], response: Response) -> None:
    """``application/graphql-response+json`` when asked for, where a request error is a 400."""
    if response.media_type == "application/json" and _wants_graphql_response(request):
        response.media_type = GRAPHQL_RESPONSE
        if request.state.get("graphql_request_error"):
            response.status_code = 400
