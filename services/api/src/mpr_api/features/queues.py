"""Priorities and queue control (docs/queues.md): ``GET /api/queues``, pausing and resuming one class or
all (``POST /api/queues[/{class}]/pause|resume``), moving a queued job to another class
(``POST /api/jobs/{id}/move``), and the same in GraphQL (``queues``; ``pauseQueues``, ``resumeQueues``,
``moveJob``). The service lives in :mod:`mpr_api.domain.queues`; ``app.state.queues`` holds it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated, Any

import msgspec
import strawberry
from litestar import Controller, Request, get, post
from litestar.di import Provide
from litestar.params import Parameter
from strawberry.types import Info

from mpr_common import subjects as s
from mpr_common.events import PRIORITIES, Priority
from mpr_common.jobstate import QueuePlaces

from ..domain.queues import MoveJob, Queues, QueueService
from ..feature import Feature
from ..graphql_errors import call as _call
from ..graphql_errors import checked as _checked
from ..limits import MAX_ID_CHARS
from ..schemas import ID_PATTERN, JobId, JobOut
from ..settings import ApiSettings

PathJobId = Annotated[str, Parameter(max_length=MAX_ID_CHARS, pattern=ID_PATTERN)]


@asynccontextmanager
async def lifespan(settings: ApiSettings, state: Any) -> AsyncIterator[None]:
    js = state["nc"].jetstream()
    flags, places = await js.key_value(s.QUEUES_KV), await js.key_value(s.JOB_STATE_KV)  # by mpr-setup
    state["queues"] = QueueService(settings, state["nc"], flags, QueuePlaces(places), state["jobs"])
    yield


def provide_queues(request: Request) -> QueueService:
    return request.app.state.queues


# --- REST ---------------------------------------------------------------------------------------------
class QueueController(Controller):
    path = "/api/queues"
    tags = ["queues"]

    @get(
        "/",
        summary="Each queue class: paused, waiting, in flight, age of the oldest waiting job",
        description=(
            "Classes in order of preference (urgent, normal, bulk). `pending`: jobs not yet taken by a "
            "transcoder; `in_flight`: taken and not finished (running, or waiting for a retry); "
            "`oldest_waiting_seconds`: how long the head of the queue has waited. `consumer` is the "
            "JetStream consumer of the class (what KEDA scales its transcoders on)."
        ),
    )
    async def list_queues(self, queues: QueueService) -> Queues:
        return await queues.states()

    @post("/pause", status_code=200, summary="Pause every class: transcoders take no new job")
    async def pause_all(self, queues: QueueService) -> Queues:
        return await queues.set_paused(list(PRIORITIES), True)

    @post("/resume", status_code=200, summary="Resume every class")
    async def resume_all(self, queues: QueueService) -> Queues:
        return await queues.set_paused(list(PRIORITIES), False)

    @post(
        "/{priority:str}/pause",
        status_code=200,
        summary="Pause one class",
        description="Transcoders take no new job of the class; the jobs they are running go on.",
    )
    async def pause(self, queues: QueueService, priority: Priority) -> Queues:
        return await queues.set_paused([priority], True)

    @post("/{priority:str}/resume", status_code=200, summary="Resume one class")
    async def resume(self, queues: QueueService, priority: Priority) -> Queues:
        return await queues.set_paused([priority], False)


class JobMoveController(Controller):
    path = "/api/jobs"
    tags = ["jobs"]

    @post(
        "/{job_id:str}/move",
        status_code=200,
        summary="Move a queued job to another class",
        description=(
            'Body: `{"priority": "urgent"}`. The job waits in the new class from now on (at its end) and '
            "runs once. 409 unless it is queued in a transcoders' queue (a package's child moves with "
            "its package); 503: the queue did not confirm it, and calling again is safe."
        ),
    )
    async def move(self, queues: QueueService, job_id: PathJobId, data: MoveJob) -> JobOut:
        return await queues.move(job_id, data.priority)


# --- GraphQL ------------------------------------------------------------------------------------------
def _service(info: Info) -> QueueService:
    return info.context["request"].app.state.queues


@strawberry.type(description="A queue class of the transcoders")
class QueueClass:
    priority: str
    paused: bool
    pending: int | None
    in_flight: int | None
    oldest_waiting_seconds: float | None
    consumer: str

    @classmethod
    def all(cls, queues: Queues) -> list[QueueClass]:
        return [cls(**msgspec.structs.asdict(q)) for q in queues.queues]


@strawberry.type(description="A job moved to another queue class")
class MovedJob:
    id: str
    status: str
    priority: str


def _classes(priority: str | None) -> list[str]:
    return [_checked(priority, Priority, "priority")] if priority is not None else list(PRIORITIES)


@strawberry.type
class QueuesQuery:
    @strawberry.field(description="Each queue class: paused, waiting, in flight, oldest waiting age")
    async def queues(self, info: Info) -> list[QueueClass]:
        return QueueClass.all(await _call(_service(info).states()))


@strawberry.type
class QueuesMutation:
    @strawberry.mutation(description="Pause one class (urgent, normal, bulk), or all without one")
    async def pause_queues(self, info: Info, priority: str | None = None) -> list[QueueClass]:
        return QueueClass.all(await _call(_service(info).set_paused(_classes(priority), True)))

    @strawberry.mutation(description="Resume one class, or all without one")
    async def resume_queues(self, info: Info, priority: str | None = None) -> list[QueueClass]:
        return QueueClass.all(await _call(_service(info).set_paused(_classes(priority), False)))

    @strawberry.mutation(description="Move a queued job to another class")
    async def move_job(self, info: Info, id: str, priority: str) -> MovedJob:
        job_id = _checked(id, JobId, "id")
        out = await _call(_service(info).move(job_id, _checked(priority, Priority, "priority")))
        return MovedJob(id=out.job.id, status=out.job.status, priority=out.job.priority)


FEATURE = Feature(
    "queues",
    routes=[QueueController, JobMoveController],
    dependencies={"queues": Provide(provide_queues, sync_to_thread=False)},
    lifespan=lifespan,
    graphql_query=QueuesQuery,
    graphql_mutation=QueuesMutation,
)
