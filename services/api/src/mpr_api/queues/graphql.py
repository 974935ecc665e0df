"""Queues in GraphQL: ``queues``; ``pauseQueues``, ``resumeQueues`` and ``moveJob``."""

from __future__ import annotations

import msgspec
import strawberry
from strawberry.types import Info

from mpr_common.events import PRIORITIES, Priority

from ..graphql.context import service
from ..graphql.errors import call as _call
from ..graphql.errors import checked as _checked
from ..http.fields import JobId
from .service import Queues, QueueService


def _service(info: Info) -> QueueService:
    return service(info, QueueService)


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
