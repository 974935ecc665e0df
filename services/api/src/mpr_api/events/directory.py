"""Each job's kind and package, for events that do not carry them (progress, completion, failure).

Learnt from the job requests the event stream reads anyway; a job requested before the stream started
is asked of the catalog once (concurrent askers share the one question), so no event waits on a query
but the first of a job the stream has not seen requested. Facts never change, so they are kept (the
least recently used are dropped first); a failed question is not asked again for a while."""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable

from nats.aio.client import Client

from mpr_common.catalog_requests import GetJob
from mpr_common.errors import NotFound

from ..catalog import ask_catalog
from .stream import JobFacts

log = logging.getLogger(__name__)

Lookup = Callable[[str], Awaitable[JobFacts | None]]


class JobDirectory:
    def __init__(self, lookup: Lookup, capacity: int = 100_000, retry_after: float = 10.0) -> None:
        self.lookup = lookup
        self.capacity = capacity
        self.retry_after = retry_after
        self.lookups = 0  # questions asked (observability and tests)
        self._facts: OrderedDict[str, JobFacts] = OrderedDict()
        self._asking: dict[str, asyncio.Future[JobFacts | None]] = {}
        self._unknown: OrderedDict[str, float] = OrderedDict()  # job id -> when to ask again

    def learn(self, job_id: str, facts: JobFacts) -> None:
        self._facts[job_id] = facts
        self._facts.move_to_end(job_id)
        self._unknown.pop(job_id, None)
        while len(self._facts) > self.capacity:
            self._facts.popitem(last=False)

    def known(self, job_id: str) -> JobFacts | None:
        return self._facts.get(job_id)

    async def facts(self, job_id: str) -> JobFacts | None:
        found = self._facts.get(job_id)
        if found is not None:
            self._facts.move_to_end(job_id)
            return found
        if self._unknown.get(job_id, 0.0) > time.monotonic():
            return None
        asking = self._asking.get(job_id)
        if asking is not None:
            return await asyncio.shield(asking)
        future: asyncio.Future[JobFacts | None] = asyncio.get_running_loop().create_future()
        self._asking[job_id] = future
        answer = None
        try:
            self.lookups += 1
            answer = await self.lookup(job_id)
        except Exception as exc:  # the catalog is down or slow: the events go out without the facts
            log.info("no kind for job %s: %s", job_id, exc or type(exc).__name__)
        finally:
            del self._asking[job_id]
            if not future.done():  # also when this asker was cancelled: the others have their answer
                future.set_result(answer)
        if answer is not None:
            self.learn(job_id, answer)
        else:
            self._unknown[job_id] = time.monotonic() + self.retry_after
            while len(self._unknown) > self.capacity:
                self._unknown.popitem(last=False)
        return answer


def catalog_lookup(nc: Client, timeout: float) -> Lookup:
    """Asks the catalog (``mpr.catalog.jobs.get``) for a job's kind and package."""

    async def lookup(job_id: str) -> JobFacts | None:
        try:
            job = (await ask_catalog(nc, GetJob(id=job_id), timeout)).job
        except NotFound:
            return None
        return JobFacts(job.kind, job.parent_id)

    return lookup
