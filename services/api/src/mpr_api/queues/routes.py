"""Queues over REST: ``GET /api/queues``, ``POST /api/queues[/{class}]/pause|resume`` and
``POST /api/jobs/{id}/move``."""

from __future__ import annotations

from typing import Annotated

from litestar import Controller, get, post
from litestar.params import Parameter

from mpr_common.events import PRIORITIES, Priority

from ..http.fields import ID_PATTERN
from ..http.limits import MAX_ID_CHARS
from ..jobs.schemas import JobOut
from .service import MoveJob, Queues, QueueService

PathJobId = Annotated[str, Parameter(max_length=MAX_ID_CHARS, pattern=ID_PATTERN)]


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
