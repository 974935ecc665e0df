"""The bare ceiling for ``POST /api/jobs``: one Litestar POST route taking a msgspec Struct (the same
fields and constraints as the API's ``JobCreate``) and answering 202 JSON, served by uvicorn exactly as
``mpr_api.__main__`` serves the API. With ``BENCH_NATS_URL`` set, each request also awaits an acked
JetStream publish (raw nats-py, ``Nats-Msg-Id`` = the job id) to ``BENCH_SUBJECT``.

Run by the bench as ``python -m bench.bare_app`` with ``BENCH_PORT``.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated, Literal

import msgspec
import uvicorn
from litestar import Litestar, get, post


class JobCreate(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    kind: Literal["transcode", "trim", "thumbnail", "audio", "hls"]
    source_key: Annotated[str, msgspec.Meta(min_length=1, max_length=1024)]
    output_key: Annotated[str, msgspec.Meta(min_length=1, max_length=1024)] | None = None
    preset: Annotated[str, msgspec.Meta(max_length=64)] | None = None
    start: Annotated[float, msgspec.Meta(ge=0)] | None = None
    end: Annotated[float, msgspec.Meta(gt=0)] | None = None
    job_id: Annotated[str, msgspec.Meta(min_length=1, max_length=64, pattern="^[A-Za-z0-9_-]+$")] | None = (
        None
    )


class Accepted(msgspec.Struct, kw_only=True):
    id: str
    kind: str
    source_key: str
    status: str = "queued"


def create_app(nats_url: str | None, subject: str) -> Litestar:
    state: dict = {}
    encode = msgspec.json.encode

    @asynccontextmanager
    async def lifespan(_app: Litestar) -> AsyncIterator[None]:
        if nats_url:
            import nats

            nc = await nats.connect(nats_url, name="bench-bare")
            state["js"] = nc.jetstream()
            try:
                yield
            finally:
                await nc.drain()
        else:
            yield

    @post("/api/jobs", status_code=202)
    async def create_job(data: JobCreate) -> Accepted:
        job_id = data.job_id or uuid.uuid4().hex
        js = state.get("js")
        if js is not None:
            await js.publish(subject, encode(data), headers={"Nats-Msg-Id": job_id})
        return Accepted(id=job_id, kind=data.kind, source_key=data.source_key)

    @get("/health")
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    return Litestar(route_handlers=[create_job, health], lifespan=[lifespan])


def main() -> None:
    uvicorn.run(
        create_app(os.environ.get("BENCH_NATS_URL") or None, os.environ.get("BENCH_SUBJECT", "bench.jobs")),
        host="127.0.0.1",
        port=int(os.environ["BENCH_PORT"]),
        log_config=None,
        access_log=False,
        timeout_graceful_shutdown=10,
        lifespan="on",
    )


if __name__ == "__main__":
    main()
