"""Retries and the dead letter queue: ``POST /api/jobs/{id}/retry``, ``POST /api/retries`` (by filter),
``GET /api/jobs/{id}/log``, ``GET /api/dead-letters`` and ``POST /api/dead-letters/{seq}/replay``, and
their GraphQL fields. The services live in :mod:`mpr_api.retries`; ``app.state.retries`` and
``app.state.dead_letters`` hold them."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from litestar import Request
from litestar.di import Provide

from mpr_common import subjects as s
from mpr_common.jobstate import JobState

from ..feature import Feature
from ..retries.dead_letters import DeadLetterService
from ..retries.graphql import RetriesMutation, RetriesQuery
from ..retries.routes import DeadLetterController, JobRetryController, RetriesController
from ..retries.service import RetryService
from ..settings import ApiSettings


@asynccontextmanager
async def lifespan(settings: ApiSettings, state: Any) -> AsyncIterator[None]:
    nc = state["nc"]
    js = nc.jetstream()
    job_state = JobState(await js.key_value(s.JOB_STATE_KV))
    retries = RetryService(settings, nc, job_state)
    state["retries"] = retries
    state["dead_letters"] = DeadLetterService(
        nc, await js.key_value(s.DLQ_REPLAYS_KV), retries
    )  # by mpr-setup
    yield


def _retries(request: Request) -> RetryService:
    return request.app.state.retries


def _dead_letters(request: Request) -> DeadLetterService:
    return request.app.state.dead_letters


FEATURE = Feature(
    "retries",
    routes=[JobRetryController, RetriesController, DeadLetterController],
    dependencies={
        "retries": Provide(_retries, sync_to_thread=False),
        "dead_letters": Provide(_dead_letters, sync_to_thread=False),
    },
    lifespan=lifespan,
    graphql_query=RetriesQuery,
    graphql_mutation=RetriesMutation,
)
