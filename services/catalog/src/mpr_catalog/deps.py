"""What the catalog's handlers work with: the resources made once in the lifespan, and the barrier that
gives read-your-writes over the streams."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from nats.aio.msg import Msg
from nats.js import JetStreamContext

from mpr_common import subjects as s
from mpr_common.bus import dead_letter
from mpr_common.jobstate import JobState

from .ingest import Ingestor, NewAsset
from .repository import Catalog


class Barrier(Protocol):
    """Read-your-writes: wait until the catalog has ingested a stream up to a sequence."""

    async def wait(self, stream: str, durable: str, seq: int | None, timeout: float) -> bool: ...


class ConsumerBarrier:
    """Asks JetStream for the consumer's ack floor (shared by every catalog replica)."""

    def __init__(self, js: JetStreamContext, poll: float = 0.02) -> None:
        self.js = js
        self.poll = poll

    async def wait(self, stream: str, durable: str, seq: int | None, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        with contextlib.suppress(Exception):
            if seq is None:  # everything stored so far
                seq = (await self.js.stream_info(stream)).state.last_seq
            while True:
                info = await self.js.consumer_info(stream, durable)
                if info.ack_floor.stream_seq >= (seq or 0):
                    return True
                if time.monotonic() >= deadline:
                    return False
                await asyncio.sleep(self.poll)
        return False


@dataclass
class CatalogDeps:
    catalog: Catalog
    ingestor: Ingestor
    submit_probe: Callable[[NewAsset], None]
    barrier: Barrier
    js: JetStreamContext  # the advisory handler reads the original request
    bucket_in: str = "mpr-media-in"  # object events name it, or are dead-lettered
    job_state: JobState | None = None  # where a job failed for good is marked, so it never runs again
    # How long a read waits for the catalog to catch up with a stream: under the API's request timeout
    # (10 s), so that a catalog behind a busy stream answers late rather than "not found".
    read_wait: float = 8.0
    scan_wait: float = 110.0  # under the API's scan timeout

    async def wait_for_jobs(self, seq: int | None, timeout: float | None = None) -> bool:
        """True once the jobs stream is ingested up to ``seq`` (None: all it holds now)."""
        return await self.barrier.wait(s.JOBS_STREAM, s.CATALOG_JOBS_DURABLE, seq, timeout or self.read_wait)

    async def wait_for_objects(self, seq: int | None, timeout: float | None = None) -> bool:
        return await self.barrier.wait(
            s.OBJECTS_STREAM, s.CATALOG_OBJECTS_DURABLE, seq, timeout or self.read_wait
        )

    async def dead_letter(self, raw: Msg, error: str) -> None:
        await dead_letter(self.js, raw, error, s.DLQ_CATALOG)


def stream_seq(raw: Msg) -> int:
    try:
        return raw.metadata.sequence.stream
    except Exception:  # not a JetStream delivery (in-process tests)
        return 0
