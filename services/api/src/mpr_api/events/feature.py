"""The live event stream: ``GET /api/events`` as Server-Sent Events and the GraphQL
``jobEvents`` subscription, over one shared reader of MPR_JOBS and MPR_ASSETS per API process
(``hub.py``; the model in ``stream.py``)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from nats.aio.client import Client

from ..feature import Feature
from ..state import ApiState
from .directory import JobDirectory, catalog_lookup
from .hub import EventHub
from .routes import EventsSubscription, stream_events
from .settings import EventStreamSettings


def event_hub(nc: Client, settings: EventStreamSettings) -> EventHub:
    """The process's hub; kinds of jobs it did not see requested are asked of the catalog."""
    return EventHub(nc, JobDirectory(catalog_lookup(nc, settings.lookup_timeout)), settings)


@asynccontextmanager
async def lifespan(settings: EventStreamSettings, state: ApiState) -> AsyncIterator[None]:
    hub = event_hub(state.bus(), settings)
    state.provide(hub)
    try:
        yield
    finally:
        await hub.close()


FEATURE = Feature(
    "events",
    routes=[stream_events],
    lifespan=lifespan,
    graphql_subscription=EventsSubscription,
)
