"""Which job a free slot runs: pulls from the queue classes' durable consumers (:mod:`.pull`) in the
order the scheduler gives (:mod:`.scheduler`), paused classes left alone (:mod:`.pause_flags`), and
nothing spinning while there is no job."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time

from nats.aio.client import Client
from nats.aio.msg import Msg

from mpr_common import subjects as s
from mpr_common.bus import LONG_POLL_SECONDS
from mpr_common.jetstream import Client as ReconnectingClient

from .pause_flags import PauseFlags
from .pull import PullRefused, pull_one
from .scheduler import Scheduler

log = logging.getLogger("mpr.transcoder")

# Pulls the server refused at once (a leader changing, a consumer being made) are asked again after this.
REFUSED_PAUSE = 1.0


async def wait_for(stopping: asyncio.Event, event: asyncio.Event, timeout: float | None) -> None:
    """Until ``event`` is set, ``stopping`` is, or ``timeout`` has passed."""
    waits = [asyncio.ensure_future(event.wait()), asyncio.ensure_future(stopping.wait())]
    try:
        await asyncio.wait(waits, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for w in waits:
            w.cancel()


class Puller:
    def __init__(
        self,
        nc: Client,
        classes: tuple[str, ...],
        scheduler: Scheduler,
        flags: PauseFlags,
        stopping: asyncio.Event,
    ) -> None:
        self.nc = nc
        self.classes = classes
        self.scheduler = scheduler
        self.flags = flags
        self.stopping = stopping

    async def next_job(self) -> tuple[str, Msg] | None:
        """A job for a free slot: of the first class in the scheduler's order that has one waiting;
        with none waiting, the first to come to any class. Paused classes are left alone, and nothing
        spins while there is no job. None once stopping."""
        while not self.stopping.is_set():
            self.flags.changed.clear()
            eligible = [c for c in self.classes if c not in self.flags.paused]
            if not eligible:  # all paused: until one resumes
                await wait_for(self.stopping, self.flags.changed, None)
                continue
            began = time.monotonic()
            got = await self._first_waiting(self.scheduler.order(eligible)) if len(eligible) > 1 else None
            if got is None:
                got = await self._wait_any(eligible)
            if got is not None:
                if await self._take(*got):
                    return got
                continue
            rest = began + REFUSED_PAUSE - time.monotonic()  # pulls refused at once: no spinning
            if rest > 0:
                await wait_for(self.stopping, self.flags.changed, rest)
        return None

    async def _first_waiting(self, order: list[str]) -> tuple[str, Msg] | None:
        """A job waiting in the first class of ``order`` that has one, asking each at once."""
        for cls in order:
            msg = await self._pull(cls, None)
            if msg is not None:
                return cls, msg
        return None

    async def _wait_any(self, classes: list[str]) -> tuple[str, Msg] | None:
        """Wait on every class at once until a job comes (the other waits are given up), a pause flag
        changes or we stop. Two jobs that came at the same instant: the second is handed back."""
        abort = asyncio.Event()

        async def pull(cls: str) -> tuple[str, Msg | None]:
            msg = await self._pull(cls, LONG_POLL_SECONDS, abort)
            if msg is not None:
                abort.set()
            return cls, msg

        flags_or_stop = asyncio.ensure_future(wait_for(self.stopping, self.flags.changed, None))
        flags_or_stop.add_done_callback(lambda _: abort.set())
        # The waits died with a lost connection: asked again once it is back, not when they expire.
        back = asyncio.ensure_future(self._reconnected())
        back.add_done_callback(lambda _: abort.set())
        try:
            results = await asyncio.gather(*(pull(c) for c in classes))
        finally:
            flags_or_stop.cancel()
            back.cancel()
        got = [(cls, msg) for cls, msg in results if msg is not None]
        for _, extra in got[1:]:
            await self.hand_back(extra)
        return got[0] if got else None

    async def _reconnected(self) -> None:
        if isinstance(self.nc, ReconnectingClient):
            await self.nc.next_reconnect().wait()
        else:  # a client that does not say: its waits end when they expire
            await asyncio.Event().wait()

    async def _pull(self, cls: str, wait: float | None, abort: asyncio.Event | None = None) -> Msg | None:
        try:
            return await pull_one(self.nc, s.JOBS_STREAM, s.transcoders_durable(cls), wait, abort)
        except PullRefused as exc:  # e.g. the consumer is gone: watch_lag reports it
            log.debug("pull from %s refused: %s", cls, exc)
        except Exception as exc:  # NATS restarting: keep trying
            log.debug("pull from %s failed: %s", cls, exc)
        return None

    async def _take(self, cls: str, msg: Msg) -> bool:
        """Take a fetched job unless its class was paused (or we began stopping) while it came: then
        hand it back for later or for another replica."""
        if self.stopping.is_set() or cls in self.flags.paused:
            await self.hand_back(msg)
            return False
        self.scheduler.served(cls)
        return True

    async def hand_back(self, msg: Msg) -> None:
        """Return a fetched job unstarted: it is delivered again at once (to a free replica)."""
        with contextlib.suppress(Exception):
            await msg.nak()
