"""Priorities and queue control (docs/queues.md): ``GET /api/queues``, pausing and resuming one class or
all (``POST /api/queues[/{class}]/pause|resume``), moving a queued job to another class
(``POST /api/jobs/{id}/move``), and the same in GraphQL (``queues``; ``pauseQueues``, ``resumeQueues``,
``moveJob``). The lifespan puts a QueueService (``service.py``) in the app's state."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from mpr_common import subjects as s
from mpr_common.jobstate import QueuePlaces

from ..feature import Feature, provide
from ..http.settings import HttpSettings
from ..jobs.service import JobService
from ..state import ApiState
from .graphql import QueuesMutation, QueuesQuery
from .routes import JobMoveController, QueueController
from .service import QueueService


@asynccontextmanager
async def lifespan(settings: HttpSettings, state: ApiState) -> AsyncIterator[None]:
    nc = state.bus()
    js = nc.jetstream()
    flags, places = await js.key_value(s.QUEUES_KV), await js.key_value(s.JOB_STATE_KV)  # by mpr-setup
    state.provide(QueueService(settings, nc, flags, QueuePlaces(places), state.get(JobService)))
    yield


FEATURE = Feature(
    "queues",
    routes=[QueueController, JobMoveController],
    dependencies={"queues": provide(QueueService)},
    lifespan=lifespan,
    graphql_query=QueuesQuery,
    graphql_mutation=QueuesMutation,
)
