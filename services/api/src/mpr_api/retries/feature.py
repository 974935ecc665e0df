"""Retries and the dead letter queue: ``POST /api/jobs/{id}/retry``, ``POST /api/retries`` (by filter),
``GET /api/jobs/{id}/log``, ``GET /api/dead-letters`` and ``POST /api/dead-letters/{seq}/replay``, and
their GraphQL fields. The lifespan puts a RetryService and a DeadLetterService in the app's state."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from mpr_common import subjects as s
from mpr_common.jobstate import JobState

from ..feature import Feature, provide
from ..http.settings import HttpSettings
from ..state import ApiState
from .dead_letters import DeadLetterService
from .graphql import RetriesMutation, RetriesQuery
from .routes import DeadLetterController, JobRetryController, RetriesController
from .service import RetryService


@asynccontextmanager
async def lifespan(settings: HttpSettings, state: ApiState) -> AsyncIterator[None]:
    nc = state.bus()
    js = nc.jetstream()
    job_state = JobState(await js.key_value(s.JOB_STATE_KV))
    retries = RetryService(settings, nc, job_state)
    replays = await js.key_value(s.DLQ_REPLAYS_KV)  # by mpr-setup
    state.provide(retries, DeadLetterService(nc, replays, retries))
    yield


FEATURE = Feature(
    "retries",
    routes=[JobRetryController, RetriesController, DeadLetterController],
    dependencies={"retries": provide(RetryService), "dead_letters": provide(DeadLetterService)},
    lifespan=lifespan,
    graphql_query=RetriesQuery,
    graphql_mutation=RetriesMutation,
)
