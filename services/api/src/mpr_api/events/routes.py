"""``GET /api/events`` (Server-Sent Events) and the GraphQL ``jobEvents`` subscription, both over the
process's :class:`~mpr_api.events.hub.EventHub` (in the app's state)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncGenerator
from typing import Annotated, Any

import strawberry
from graphql import GraphQLError
from litestar import Litestar, Request, get
from litestar.params import Parameter
from litestar.serialization import encode_json
from litestar.types import ASGIApp, Message, Receive, Scope, Send
from strawberry.types import Info

from mpr_common.errors import BadRequest, MprError
from mpr_common.events import JobKind

from ..state import state_of
from .hub import ClientGone, EventHub, HubClosed, SlowClient, Subscription
from .settings import EventStreamSettings
from .stream import (
    JOB_EVENT_TYPES,
    KEEP_ALIVE,
    Cursor,
    EventFilter,
    JobEventData,
    StreamEvent,
    decode_cursor,
    parse_filter,
    split_types,
    sse_frame,
    sse_retry,
)

log = logging.getLogger(__name__)

RETRY_MS = 2000  # an EventSource reconnects after this long (with Last-Event-ID)
BATCH = 100  # events written together when they are already waiting

_DESCRIPTION = """Server-Sent Events: `job.queued`, `job.progress` (with `eta`, seconds), `job.playable` (a
package that can be played before it completes: `output_key` is its master playlist, the job's
`playable_url` links it), `job.completed`, `job.failed`, `job.cancelled` and `asset.registered`. Each event has an `id:` (an opaque cursor): reconnect
with it as `Last-Event-ID` (or `?after=`) to continue right after it, nothing lost or repeated (an
`event: reset` says the cursor was older than the events kept). Without one the stream starts now.
Filters combine: `job_id` (repeatable; a package's id also matches its children), `kind` (repeatable),
`types` (comma-separated). A `: keep-alive` comment is sent after 15 s of silence."""


def _hub(app: Litestar) -> EventHub:
    return state_of(app).get(EventHub)


def _cursor(value: str | None) -> Cursor | None:
    if value is None or not value.strip():
        return None
    try:
        return decode_cursor(value)
    except ValueError as exc:
        raise BadRequest(f"Last-Event-ID / after: {exc}") from None


@get(
    "/api/events",
    media_type="text/event-stream",
    summary="Live job and asset events",
    description=_DESCRIPTION,
    tags=["events"],
)
async def stream_events(
    request: Request[Any, Any, Any],
    job_id: Annotated[list[str] | None, Parameter(query="job_id", description="repeatable")] = None,
    kind: Annotated[list[JobKind] | None, Parameter(description="job kind, repeatable")] = None,
    types: Annotated[str | None, Parameter(description="comma-separated event types")] = None,
    after: Annotated[str | None, Parameter(description="resume after this event id")] = None,
    last_event_id: Annotated[str | None, Parameter(header="Last-Event-ID")] = None,
) -> ASGIApp:
    try:
        flt = parse_filter(job_id, list(kind or ()), split_types(types))
    except ValueError as exc:
        raise BadRequest(str(exc)) from None
    # An EventSource reconnecting keeps the first URL's ?after= and sends the newer Last-Event-ID.
    cursor = _cursor(last_event_id if last_event_id else after)
    hub = _hub(request.app)
    return EventStreamResponse(hub, flt, cursor, hub.settings)


class EventStreamResponse:
    """The response as an ASGI app: its headers go out only once the client's stream is registered (so
    a client that has them misses nothing), and a refusal (503) can still be sent before them."""

    def __init__(
        self, hub: EventHub, flt: EventFilter, after: Cursor | None, settings: EventStreamSettings
    ) -> None:
        self.hub = hub
        self.filter = flt
        self.after = after
        self.settings = settings

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        async with contextlib.AsyncExitStack() as stack:
            try:
                sub = await stack.enter_async_context(self.hub.subscribe(self.filter, self.after))
            except MprError as exc:
                await _refuse(send, exc)
                return
            await send(
                {
                    "type": "http.response.start",
                    "status": 200,
                    "headers": [
                        (b"content-type", b"text/event-stream; charset=utf-8"),
                        (b"cache-control", b"no-cache"),
                        (b"x-accel-buffering", b"no"),  # nginx: pass each event on at once
                    ],
                }
            )
            writer = asyncio.create_task(self._write(sub, send))
            gone = asyncio.create_task(_disconnected(receive))
            try:
                await asyncio.wait({writer, gone}, return_when=asyncio.FIRST_COMPLETED)
            finally:
                sub.end(ClientGone())  # also stops a writer whose cancellation a library swallowed
                writer.cancel()
                gone.cancel()
                await asyncio.wait({writer, gone})
            failure = None if writer.cancelled() else writer.exception()
            # (OSError: the client went away; TimeoutError: it read nothing for send_timeout)
            if failure is not None and not isinstance(failure, (OSError, TimeoutError)):
                log.warning("an event stream failed: %r", failure)

    async def _write(self, sub: Subscription, send: Send) -> None:
        async def write(body: bytes, more: bool = True) -> None:
            message: Message = {"type": "http.response.body", "body": body, "more_body": more}
            async with asyncio.timeout(self.settings.send_timeout):  # a client that reads nothing
                await send(message)

        await write(sse_retry(RETRY_MS))
        while True:
            try:
                item = await sub.next(self.settings.keepalive)
            except ClientGone:
                return
            except (SlowClient, HubClosed) as exc:
                # Ended by us: the client reconnects with its last event's id and loses nothing.
                await write(b": " + str(exc).encode() + b"\n\n", more=False)
                return
            if item is None:
                await write(KEEP_ALIVE)
                continue
            items = [item, *sub.ready(BATCH)]
            await write(b"".join(sse_frame(cursor, event) for cursor, event in items))


async def _disconnected(receive: Receive) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass


async def _refuse(send: Send, exc: MprError) -> None:
    body = encode_json({"status_code": exc.code, "detail": exc.detail})
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    if exc.code == 503:
        headers.append((b"retry-after", b"5"))
    await send({"type": "http.response.start", "status": exc.code, "headers": headers})
    await send({"type": "http.response.body", "body": body, "more_body": False})


# --- GraphQL ------------------------------------------------------------------------------------------
@strawberry.type(description="A job's event: the same as GET /api/events gives, with its cursor")
class JobEvent:
    cursor: str = strawberry.field(description="give it as `after` to resume right after this event")
    type: str = strawberry.field(
        description="job.queued, job.progress, job.playable, job.completed, job.failed, job.cancelled; reset"
    )
    job_id: str | None
    kind: str | None
    status: str | None
    progress: float | None
    speed: float | None
    eta: float | None = strawberry.field(description="seconds until the job ends; null when unknown")
    worker: str | None
    attempt: int | None
    parent_id: str | None
    error: str | None
    reason: str | None
    output_key: str | None
    output_bucket: str | None
    at: float

    @classmethod
    def of(cls, cursor: str, event: StreamEvent) -> JobEvent:
        d = event.data
        if not isinstance(d, JobEventData):  # a reset
            return cls(
                cursor=cursor,
                type=event.type,
                job_id=None,
                kind=None,
                status=None,
                progress=None,
                speed=None,
                eta=None,
                worker=None,
                attempt=None,
                parent_id=None,
                error=None,
                reason=None,
                output_key=None,
                output_bucket=None,
                at=d.at,
            )
        return cls(
            cursor=cursor,
            type=event.type,
            job_id=d.job_id,
            kind=d.kind,
            status=d.status,
            progress=d.progress,
            speed=d.speed,
            eta=d.eta,
            worker=d.worker,
            attempt=d.attempt,
            parent_id=d.parent_id,
            error=d.error,
            reason=d.reason,
            output_key=d.output_key,
            output_bucket=d.output_bucket,
            at=d.at,
        )


def _bad_request(message: str) -> GraphQLError:
    return GraphQLError(message, extensions={"code": BadRequest.name})


@strawberry.type(name="Subscription")
class EventsSubscription:
    @strawberry.subscription(
        description="Job events as they happen (graphql-transport-ws): filters as GET /api/events; "
        "`after`: a cursor to resume right after"
    )
    async def job_events(
        self,
        info: Info,
        job_id: list[str] | None = None,
        kind: list[str] | None = None,
        types: list[str] | None = None,
        after: str | None = None,
    ) -> AsyncGenerator[JobEvent, None]:
        try:
            flt = parse_filter(job_id, kind, types, allowed_types=JOB_EVENT_TYPES)
            cursor = decode_cursor(after) if after else None
        except ValueError as exc:
            raise _bad_request(str(exc)) from None
        connection = info.context.get("socket") or info.context.get("request")
        hub = _hub(connection.app)
        try:
            async with hub.subscribe(flt, cursor) as sub:
                while True:
                    item = await sub.next(None)
                    if item is not None:
                        yield JobEvent.of(*item)
        except (SlowClient, HubClosed, MprError) as exc:
            code = exc.name if isinstance(exc, MprError) else "UNAVAILABLE"
            raise GraphQLError(str(exc), extensions={"code": code}) from None
