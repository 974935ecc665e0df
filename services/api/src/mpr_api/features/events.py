"""The live event stream (issue #10, 3): ``GET /api/events`` as Server-Sent Events and the GraphQL
``jobEvents`` subscription, over one shared reader of MPR_JOBS and MPR_ASSETS per API process
(``event_hub.py``; the model in ``event_stream.py``)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from ..event_hub import EventHub, EventStreamSettings
from ..event_routes import EventsSubscription, stream_events
from ..feature import Feature
from ..job_directory import JobDirectory, catalog_lookup
from ..settings import ApiSettings


def event_hub(nc: Any, settings: EventStreamSettings) -> EventHub:
    """The process's hub; kinds of jobs it did not see requested are asked of the catalog."""
    return EventHub(nc, JobDirectory(catalog_lookup(nc, settings.lookup_timeout)), settings)


@asynccontextmanager
async def lifespan(_settings: ApiSettings, state: Any) -> AsyncIterator[None]:
    hub = event_hub(state.nc, EventStreamSettings.from_env())
    state.event_hub = hub
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
