"""The live event stream's reading side: one reader per API process, shared by every client.

The API identity manages no consumer (not even an ephemeral one: a push consumer's deliver subject is
not checked against its creator's permissions, so creating one would let the API have JetStream publish
on subjects it may not publish on). It reads MPR_JOBS and MPR_ASSETS by stream sequence instead (direct
or leader gets, read-only) and is woken by a plain subscription to their subjects, with a slow poll in
case a wake-up is lost. Each message is read and mapped once per process, then handed to every client
(:class:`Subscription`) whose filter matches, into a bounded buffer: a client that lets it fill is
disconnected rather than buffered for.

Resuming: a client whose cursor is behind the reader catches up with reads of its own (paced by its
connection), then joins the shared reader. Every client keeps its own cursor and takes an event of
stream X only if its sequence is past the cursor's X, so the hand-over repeats and loses nothing.
The reader runs while at least one client is connected."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription as NatsSubscription
from nats.js import JetStreamContext
from nats.js.api import RawStreamMsg
from nats.js.errors import NotFoundError

from mpr_common.codec import decode
from mpr_common.errors import Unavailable
from mpr_common.events import AssetRegistered, JobCompleted, JobFailed, JobPlayable, JobProgress, JobRequested
from mpr_common.jobs import job_identity

from .directory import JobDirectory
from .eta import Observation, ProgressClock
from .settings import EventStreamSettings
from .stream import (
    STREAM_FILTERS,
    STREAM_KEYS,
    STREAM_NAMES,
    Cursor,
    EventFilter,
    JobFacts,
    StreamEvent,
    StreamKey,
    asset_event,
    completed_event,
    encode_cursor,
    failed_event,
    job_subject,
    playable_event,
    progress_event,
    queued_event,
    reset_event,
)

log = logging.getLogger(__name__)

POLL = 2.0  # seconds between reads when no wake-up came (core NATS may drop one)
RETRY = 1.0  # seconds before reading again after NATS failed


class TooManyStreams(Unavailable):
    pass


class SlowClient(Exception):
    """The client let its buffer fill: it reconnects with its last event's id and loses nothing."""


class HubClosed(Exception):
    """The API is shutting down."""


class ClientGone(Exception):
    """The client disconnected."""


@dataclass(frozen=True, slots=True)
class StreamHead:
    first_seq: int
    last_seq: int


class StreamReader:
    """One stream, read message by message after a sequence."""

    def __init__(self, js: JetStreamContext, key: StreamKey) -> None:
        self.js = js
        self.key = key
        self.name = STREAM_NAMES[key]
        self.filter = STREAM_FILTERS[key]
        self.direct = False  # answered by any replica, without JSON and base64: when the stream allows it

    async def head(self) -> StreamHead:
        info = await self.js.stream_info(self.name)
        self.direct = bool(info.config.allow_direct)
        return StreamHead(info.state.first_seq, info.state.last_seq)

    async def next_after(self, seq: int) -> RawStreamMsg | None:
        try:
            return await self.js.get_msg(
                self.name, seq + 1, subject=self.filter, next=True, direct=self.direct
            )
        except NotFoundError:
            return None


class EventHub:
    def __init__(self, nc: Client, directory: JobDirectory, settings: EventStreamSettings) -> None:
        self.nc = nc
        self.directory = directory
        self.settings = settings
        self.clock = ProgressClock()
        self.readers = {key: StreamReader(nc.jetstream(), key) for key in STREAM_KEYS}
        self.position = Cursor()  # what the shared reader has read up to
        self.clients: set[Subscription] = set()  # connected, catching up or live
        self.live: set[Subscription] = set()  # given the shared reader's events
        self._task: asyncio.Task[None] | None = None
        self._stop = asyncio.Event()  # the reader's own: set when it is to stop
        self._wakeups: list[NatsSubscription] = []
        self._woken = asyncio.Event()
        self._lock = asyncio.Lock()
        self._closed = False

    # --- clients --------------------------------------------------------------------------------
    @contextlib.asynccontextmanager
    async def subscribe(self, flt: EventFilter, after: Cursor | None = None) -> AsyncIterator[Subscription]:
        """A client's stream: from ``after`` (a cursor it was given), else from now. Raises
        :class:`TooManyStreams` beyond the setting's limit and ``Unavailable`` when NATS is."""
        if self._closed:
            raise Unavailable("the API is shutting down")
        if len(self.clients) >= self.settings.max_streams:
            raise TooManyStreams(
                f"this API process serves {self.settings.max_streams} event streams already; retry later"
            )
        sub = Subscription(self, flt)
        self.clients.add(sub)
        try:
            try:
                await self._ensure_running()
                await sub.start(after)
            except (Unavailable, HubClosed):
                raise
            except Exception as exc:
                raise Unavailable(f"the event streams cannot be read: {exc or type(exc).__name__}") from None
            yield sub
        finally:
            sub.close()
            self.clients.discard(sub)
            if not self.clients:
                await self._stop_if_idle()

    def join(self, sub: Subscription) -> None:
        self.live.add(sub)

    # --- the shared reader ------------------------------------------------------------------------
    async def _ensure_running(self) -> None:
        async with self._lock:
            if self._task is not None:
                return
            try:
                for subject in STREAM_FILTERS.values():  # before the heads: nothing after them is missed
                    self._wakeups.append(await self.nc.subscribe(subject, cb=self._wake))
                heads = {key: await reader.head() for key, reader in self.readers.items()}
            except BaseException:
                await self._halt()
                raise
            self.position = Cursor(heads["jobs"].last_seq, heads["assets"].last_seq)
            self._stop = asyncio.Event()
            self._task = asyncio.create_task(self._run(self._stop), name="mpr-event-hub")

    async def _stop_if_idle(self) -> None:
        async with self._lock:
            if not self.clients and self._task is not None:
                await self._halt()

    async def _halt(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            # Told twice: 3.11's asyncio.wait_for (in nats-py's requests) swallows a cancellation that
            # comes as its wait ends, so the reader also checks its flag after every step.
            self._stop.set()
            self._woken.set()
            task.cancel()
            await asyncio.wait({task})  # (awaiting the task itself would swallow our own cancellation)
        for sub in self._wakeups:
            with contextlib.suppress(Exception):
                await sub.unsubscribe()
        self._wakeups.clear()

    async def close(self) -> None:
        """End every client's stream and stop reading (the API's shutdown)."""
        self._closed = True
        for sub in list(self.clients):
            sub.end(HubClosed())
        async with self._lock:
            await self._halt()

    async def _wake(self, _msg: Msg) -> None:
        self._woken.set()

    async def _run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            self._woken.clear()  # before reading: a wake-up during the reads is not lost
            read = False
            for key, reader in self.readers.items():
                try:
                    raw = await reader.next_after(self.position[key])
                    if raw is None:
                        continue
                    read = True
                    event = await self.event_of(key, raw)
                except asyncio.CancelledError:
                    raise
                except Exception as exc:
                    log.warning("reading %s failed: %s", reader.name, exc or type(exc).__name__)
                    await asyncio.sleep(RETRY)
                    continue
                seq = raw.seq or self.position[key] + 1
                self.position = self.position.advanced(key, seq)
                for sub in list(self.live):
                    sub.offer(key, seq, event)
            if not read and not stop.is_set():
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(POLL):
                        await self._woken.wait()

    async def event_of(self, key: StreamKey, raw: RawStreamMsg) -> StreamEvent | None:
        """The stream event of one message (None: one the stream does not show, or undecodable)."""
        seq = raw.seq or 0
        data = raw.data or b""
        try:
            if key == "assets":
                return asset_event(decode(data, AssetRegistered), seq)
            which = job_subject(raw.subject or "")
            if which == "requested":
                msg_id = (raw.headers or {}).get("Nats-Msg-Id")
                req = job_identity(decode(data, JobRequested), msg_id, seq)
                self.directory.learn(req.job_id, JobFacts(req.kind, req.parent_id))
                self.clock.forget(req.job_id)
                return queued_event(req, seq)
            if which == "progress":
                p = decode(data, JobProgress)
                first = self.clock.observe(p.job_id, p.attempt, Observation(p.at, p.progress))
                return progress_event(p, seq, await self.directory.facts(p.job_id), first)
            if which == "playable":
                playable = decode(data, JobPlayable)
                return playable_event(playable, seq, await self.directory.facts(playable.job_id))
            if which == "completed":
                c = decode(data, JobCompleted)
                self.clock.forget(c.job_id)
                return completed_event(c, seq, await self.directory.facts(c.job_id))
            if which == "failed":
                f = decode(data, JobFailed)
                self.clock.forget(f.job_id)
                return failed_event(f, seq, await self.directory.facts(f.job_id))
        except Exception as exc:  # undecodable (the lookups never raise): skipped, never read again
            log.debug("skipping %s message %d: %s", key, seq, exc)
        return None


Item = tuple[str, StreamEvent]  # (the cursor to resume after it, the event)


class Subscription:
    """One client's stream: catches up with reads of its own, then takes the shared reader's events."""

    def __init__(self, hub: EventHub, flt: EventFilter) -> None:
        self.hub = hub
        self.filter = flt
        self.position = Cursor()
        self.queue: asyncio.Queue[Item] = asyncio.Queue(hub.settings.buffer)
        self.pending: list[Item] = []  # given before anything else (a reset)
        self.is_live = False
        self.ended: Exception | None = None
        self._turn = 0

    async def start(self, after: Cursor | None) -> None:
        if after is None:
            self.position = self.hub.position
            self._go_live()
            return
        lost = False
        position = after
        for key, reader in self.hub.readers.items():
            head = await reader.head()
            if after[key] > head.last_seq:  # from another stream of that name (re-created): start from now
                position = position.moved(key, head.last_seq)
                lost = lost or self.filter.wants(key)
            elif after[key] < head.first_seq - 1:  # the streams no longer keep what followed it
                position = position.moved(key, head.first_seq - 1)
                lost = lost or self.filter.wants(key)
        self.position = position
        if lost:
            self.pending.append((encode_cursor(position), reset_event(time.time())))

    def _go_live(self) -> None:
        self.is_live = True
        self.hub.join(self)

    def offer(self, key: StreamKey, seq: int, event: StreamEvent | None) -> None:
        """An event read by the shared reader (called by it, in stream order)."""
        if seq <= self.position[key] or self.ended is not None:
            return  # given already (read while catching up), or cut off
        self.position = self.position.advanced(key, seq)
        if event is None or not self.filter.matches(event):
            return
        try:
            self.queue.put_nowait((encode_cursor(self.position), event))
        except asyncio.QueueFull:
            self.end(SlowClient(f"more than {self.hub.settings.buffer} events waited for this client"))

    def end(self, why: Exception) -> None:
        """Take no more events: the client is given what it has been queued, then ``why``."""
        if self.ended is None:
            self.ended = why
        self.hub.live.discard(self)
        with contextlib.suppress(asyncio.QueueFull):
            self.queue.put_nowait(("", _WAKE))  # wakes a waiting next(); never given out

    def close(self) -> None:
        self.hub.live.discard(self)
        self.ended = self.ended or HubClosed()

    async def next(self, timeout: float | None) -> Item | None:
        """The next event, or None after ``timeout`` seconds without one (time for a keep-alive).
        Raises :class:`SlowClient` or :class:`HubClosed` once the queued events have been given."""
        if self.pending:
            return self.pending.pop(0)
        loop = asyncio.get_running_loop()
        deadline = None if timeout is None else loop.time() + timeout
        while not self.is_live:
            if self.ended is not None:
                raise self.ended
            item = await self._catch_up()
            if item is not None:
                return item
            if deadline is not None and loop.time() >= deadline:
                return None
        return await self._next_live(deadline)

    async def _next_live(self, deadline: float | None) -> Item | None:
        """The next event queued by the shared reader, or None at ``deadline``."""
        while True:
            if not self.queue.empty():  # no timer to set when events are waiting
                item = self.queue.get_nowait()
            elif self.ended is not None:
                raise self.ended
            else:
                try:
                    async with asyncio.timeout_at(deadline):
                        item = await self.queue.get()
                except TimeoutError:
                    return None
            if item[1] is not _WAKE:
                return item

    def ready(self, limit: int) -> list[Item]:
        """Events already queued (up to ``limit``), without waiting: sent with the one just taken."""
        items: list[Item] = []
        while len(items) < limit and not self.queue.empty():
            item = self.queue.get_nowait()
            if item[1] is not _WAKE:
                items.append(item)
        return items

    async def _catch_up(self) -> Item | None:
        """One read towards the shared reader's position; joins it once there (in the same step, so no
        event of the shared reader falls between)."""
        hub_position = self.hub.position
        behind = [k for k in STREAM_KEYS if self.position[k] < hub_position[k]]
        for key in list(behind):
            if not self.filter.wants(key):  # nothing there can match: skip it
                self.position = self.position.moved(key, hub_position[key])
                behind.remove(key)
        if not behind:
            self._go_live()
            return None
        key = behind[self._turn % len(behind)]
        self._turn += 1
        raw = await self.hub.readers[key].next_after(self.position[key])
        if raw is None:  # nothing left after it that the shared reader had not read
            self.position = self.position.advanced(key, hub_position[key])
            return None
        event = await self.hub.event_of(key, raw)
        self.position = self.position.advanced(key, raw.seq or self.position[key] + 1)
        if event is None or not self.filter.matches(event):
            return None
        return encode_cursor(self.position), event


_WAKE: Any = object()  # a queue entry that only wakes the reader of the queue
