"""Webhook delivery, in every API replica.

Fan-out: the durable consumers WEBHOOKS_JOBS_DURABLE and WEBHOOKS_ASSETS_DURABLE (made by mpr-setup)
are shared by all replicas, so each stored event is handed to one replica; it turns the event into one
delivery task per matching subscription on WEBHOOK_TASKS and acknowledges the event. A task is
published with a de-duplication id made from its delivery id, so an event handed out again (a replica
died before acking it) does not make a second task.

Delivery: the tasks' durable consumer WEBHOOKS_TASKS_DURABLE is shared the same way, so each attempt
is made by one replica. An attempt that fails and may be retried becomes a new task due later (its
message is NAKed with the remaining delay until then), and the failed one is acknowledged: nothing
waits un-acked through a backoff. Attempts run concurrently (WEBHOOK_CONCURRENCY per replica), at most
WEBHOOK_PER_SUBSCRIPTION at once per subscription: a slow or dead receiver's tasks are put back for
later, not queued in front of other subscriptions' tasks."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass

import msgspec
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.errors import TimeoutError as NatsTimeoutError
from nats.js import JetStreamContext

from mpr_common import subjects as s
from mpr_common.bus import BatchConsumer, fetch_or_reconnect, publish_event, settle_batch
from mpr_common.catalog_requests import GetJob
from mpr_common.codec import DecodeError, ValidationError, decode, encode
from mpr_common.errors import NotFound
from mpr_common.events import DeadLetter, JobView

from ..catalog import ask_catalog
from .backoff import next_delay, verdict
from .cloudevents import JobLookup, asset_occurrence, cloud_event, delivery_id, job_occurrence, read_job_event
from .deliveries import DeliveryLog
from .model import MAX_ATTEMPTS_KEPT, Attempt, Delivery, Occurrence, Subscription, matches
from .sealing import SecretUnreadable
from .sender import Outcome, Sender
from .settings import WebhookSettings
from .signing import signed_headers
from .store import SubscriptionStore

log = logging.getLogger("mpr.api.webhooks")

TASK_ACK_WAIT = 60.0  # the tasks consumer's ack_wait (mpr-setup): an attempt must end well within it
FAN_OUT_RETRY = 2.0  # seconds before a batch that could not be fanned out is handed out again


@dataclass(frozen=True)
class DeliveryPolicy:
    max_attempts: int
    retry_base: float
    retry_max: float
    timeout: float
    concurrency: int
    per_subscription: int
    secret_grace: float

    @classmethod
    def of(cls, settings: WebhookSettings) -> DeliveryPolicy:
        return cls(
            max_attempts=max(1, settings.webhook_max_attempts),
            retry_base=settings.webhook_retry_base,
            retry_max=settings.webhook_retry_max,
            timeout=min(settings.webhook_timeout, TASK_ACK_WAIT / 2),
            concurrency=max(1, settings.webhook_concurrency),
            per_subscription=max(1, settings.webhook_per_subscription),
            secret_grace=settings.webhook_secret_grace,
        )


def after_attempt(
    d: Delivery,
    outcome: Outcome,
    now: float,
    policy: DeliveryPolicy,
    rand: Callable[[], float] = random.random,
) -> Delivery:
    """The delivery once attempt ``d.attempt`` had ``outcome``: delivered; retrying (the next attempt
    and when it is due); or dead (a final answer, a refused address, or the last attempt failed)."""
    attempts = [*d.attempts, outcome.attempt][-MAX_ATTEMPTS_KEPT:]
    result = "final" if outcome.refused else verdict(outcome.attempt.status_code)
    if result == "delivered":
        return msgspec.structs.replace(
            d, state="delivered", attempts=attempts, not_before=0.0, updated_at=now
        )
    if result == "retry" and d.attempt < policy.max_attempts:
        delay = next_delay(d.attempt, outcome.retry_after, policy.retry_base, policy.retry_max, now, rand)
        return msgspec.structs.replace(
            d,
            state="retrying",
            attempt=d.attempt + 1,
            attempts=attempts,
            not_before=now + delay,
            updated_at=now,
        )
    return msgspec.structs.replace(d, state="dead", attempts=attempts, not_before=0.0, updated_at=now)


def task_msg_id(d: Delivery) -> str:
    """One task per (delivery, series, attempt): a task published twice is stored once."""
    return f"{d.id}-{d.series}-{d.attempt}"


class WebhookEngine:
    def __init__(
        self,
        js: JetStreamContext,
        store: SubscriptionStore,
        deliveries: DeliveryLog,
        sender: Sender,
        lookup: JobLookup,
        policy: DeliveryPolicy,
    ) -> None:
        self.js = js
        self.store = store
        self.deliveries = deliveries
        self.sender = sender
        self.lookup = lookup
        self.policy = policy
        self._consumers = [
            BatchConsumer(js, s.JOBS_STREAM, s.WEBHOOKS_JOBS_DURABLE, self.fan_out, batch=100),
            BatchConsumer(js, s.ASSETS_STREAM, s.WEBHOOKS_ASSETS_DURABLE, self.fan_out, batch=100),
        ]
        self._puller: asyncio.Task[None] | None = None
        self._inflight: set[asyncio.Task[None]] = set()
        # Per subscription: attempts under way or waiting here, the slots they share, the recent pace.
        self._queued: Counter[str] = Counter()
        self._slots: dict[str, asyncio.Semaphore] = {}
        self._latency: dict[str, float] = {}

    def start(self) -> None:
        for consumer in self._consumers:
            consumer.start()
        self._puller = asyncio.create_task(self._pull_tasks(), name="webhook-tasks")

    async def stop(self) -> None:
        """Stop taking work; attempts under way may finish within the timeout (else their tasks come
        back to another replica after the consumer's ack_wait)."""
        for consumer in self._consumers:
            await consumer.stop()
        if self._puller is not None:
            self._puller.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._puller
        if self._inflight:
            _, late = await asyncio.wait(self._inflight, timeout=self.policy.timeout)
            for task in late:
                task.cancel()
            await asyncio.gather(*late, return_exceptions=True)
        await self.sender.aclose()

    # --- fan-out -------------------------------------------------------------------------------
    async def fan_out(self, msgs: list[Msg]) -> None:
        """A batch from the jobs or the assets consumer: every event acked once its tasks are stored,
        or the whole batch NAKed for later (its tasks de-duplicate when it comes back)."""

        async def work() -> None:
            subs = [sub for sub in await self.store.all() if sub.active]
            if not subs:
                return
            for msg in msgs:
                occ = await self.occurrence(msg, subs)
                if occ is None:
                    continue
                for sub in subs:
                    if matches(sub, occ):
                        await self.enqueue(sub, occ)

        await settle_batch(msgs, work, retry_delay=FAN_OUT_RETRY)

    async def occurrence(self, msg: Msg, subs: list[Subscription]) -> Occurrence | None:
        """The event as webhooks see it; None if no subscription wants its type (nothing is looked up
        then) or it does not decode (its consumers dead-letter it; webhooks skip it)."""
        meta = msg.metadata
        seq = meta.sequence.stream
        try:
            if meta.stream == s.ASSETS_STREAM:
                if not any("asset.registered" in sub.types for sub in subs):
                    return None
                return asset_occurrence(msg.data, seq)
            type_, event = read_job_event(msg.subject, msg.data)
        except (DecodeError, ValidationError) as exc:
            log.warning("webhooks skip undecodable %s #%d: %s", msg.subject, seq, exc)
            return None
        if not any(type_ in sub.types for sub in subs):
            return None
        msg_id = (msg.headers or {}).get("Nats-Msg-Id")
        return await job_occurrence(type_, event, msg_id, seq, self.lookup)

    async def enqueue(self, sub: Subscription, occ: Occurrence) -> bool:
        """One delivery task for ``sub``; False if the fact was delivered to it already (its log record
        exists: e.g. a cancellation read first from the request, then from the worker's report)."""
        did = delivery_id(sub.id, occ.fact)
        if await self.deliveries.get(sub.id, did) is not None:
            return False
        now = time.time()
        task = Delivery(
            id=did,
            subscription_id=sub.id,
            type=occ.type,
            subject=occ.subject,
            event=msgspec.Raw(cloud_event(occ, did)),
            created_at=now,
            updated_at=now,
        )
        await publish_event(self.js, s.WEBHOOK_TASKS, task, msg_id=task_msg_id(task), propagate=False)
        return True

    # --- delivery --------------------------------------------------------------------------------
    async def _pull_tasks(self) -> None:
        sub = None
        while sub is None:
            try:
                sub = await self.js.pull_subscribe_bind(
                    s.WEBHOOKS_TASKS_DURABLE, stream=s.WEBHOOK_TASKS_STREAM
                )
            except Exception as exc:
                log.warning("waiting for consumer %s (run mpr-setup): %s", s.WEBHOOKS_TASKS_DURABLE, exc)
                await asyncio.sleep(1)
        try:
            while True:
                room = self.policy.concurrency - len(self._inflight)
                if room <= 0:
                    await asyncio.wait(self._inflight, return_when=asyncio.FIRST_COMPLETED)
                    continue
                try:
                    msgs = await fetch_or_reconnect(self.js, sub, room)
                except (TimeoutError, NatsTimeoutError):
                    continue
                except asyncio.CancelledError:
                    raise
                except Exception as exc:  # reconnecting: un-acked tasks come back after ack_wait
                    log.debug("fetch from %s failed: %s", s.WEBHOOKS_TASKS_DURABLE, exc)
                    await asyncio.sleep(0.5)
                    continue
                for msg in msgs:
                    task = asyncio.create_task(self.handle_task(msg))
                    self._inflight.add(task)
                    task.add_done_callback(self._inflight.discard)
        finally:
            with contextlib.suppress(Exception):
                await sub.unsubscribe()

    async def handle_task(self, msg: Msg) -> None:
        try:
            d = decode(msg.data, Delivery)
        except (DecodeError, ValidationError) as exc:
            log.error("dropping an undecodable webhook task: %s", exc)
            await msg.ack()
            return
        try:
            await self._handle(msg, d)
        except Exception:
            log.exception("webhook delivery %s failed; it will be tried again", d.id)
            with contextlib.suppress(Exception):
                await msg.nak(delay=5.0)

    async def _handle(self, msg: Msg, d: Delivery) -> None:
        now = time.time()
        if d.not_before > now:  # a retry not due yet: back in the queue until it is
            await msg.nak(delay=d.not_before - now)
            return
        sub = await self.store.get(d.subscription_id)
        if sub is None:  # deleted: its deliveries go with it
            await msg.ack()
            return
        if not sub.active:
            skipped = msgspec.structs.replace(d, state="skipped", updated_at=now)
            await self.deliveries.record(skipped)
            await msg.ack()
            return
        limit = self.policy.per_subscription
        if self._queued[sub.id] >= 2 * limit:
            # As many attempts as it may have are under way and as many wait: put this one back, for
            # about the time those take at the receiver's recent pace (a dead receiver's long, a fast
            # one's short), and take no slot here meanwhile.
            pace = self._latency.get(sub.id, self.policy.timeout)
            await msg.nak(delay=min(self.policy.timeout, max(0.02, pace * 2)) * (0.5 + random.random()))
            return
        self._queued[sub.id] += 1
        try:
            slot = self._slots.setdefault(sub.id, asyncio.Semaphore(limit))
            waited = slot.locked()
            async with slot:
                if waited:  # at most one attempt's time: the task's ack_wait starts again
                    await msg.in_progress()
                outcome = await self.attempt(sub, d)
        finally:
            self._queued[sub.id] -= 1
            if self._queued[sub.id] <= 0:
                del self._queued[sub.id], self._slots[sub.id]
        seconds = outcome.attempt.latency_ms / 1000
        self._latency[sub.id] = 0.7 * self._latency.get(sub.id, seconds) + 0.3 * seconds
        after = after_attempt(d, outcome, time.time(), self.policy)
        if after.state == "retrying":
            await publish_event(self.js, s.WEBHOOK_TASKS, after, msg_id=task_msg_id(after), propagate=False)
        await self.deliveries.record(after)
        if after.state == "dead":
            await self.dead_letter(after)
        await msg.ack()

    async def attempt(self, sub: Subscription, d: Delivery) -> Outcome:
        body = bytes(d.event)
        now = time.time()
        try:  # opened here only, to sign: nowhere else is a secret in clear
            keys = [self.store.box.open(x, sub.id) for x in sub.signing_secrets(now)]
        except SecretUnreadable as exc:  # retried: the right key may be restored meanwhile
            return Outcome(attempt=Attempt(at=now, error=str(exc), series=d.series))
        headers = signed_headers(keys, d.id, int(now), body)
        return await self.sender.post(sub.url, body, headers, series=d.series)

    async def dead_letter(self, d: Delivery) -> None:
        last = d.attempts[-1] if d.attempts else None
        letter = DeadLetter(
            subject=s.webhook_delivery_subject(d.subscription_id, d.id),
            deliveries=sum(1 for a in d.attempts if a.series == d.series),
            error=(last.error if last and last.error else "gave up"),
            payload=encode(d).decode(),
            job_id=d.subject if d.type.startswith("job.") else None,
        )
        await publish_event(self.js, s.DLQ_WEBHOOKS, letter, msg_id=f"dlq-{d.id}-{d.series}", propagate=False)


def catalog_lookup(nc: Client, timeout: float) -> JobLookup:
    """The job as the catalog has it once it has read the jobs stream up to ``seq`` (its read-your-
    writes barrier); None if it has no such job. An unavailable catalog raises (the batch is retried)."""

    async def lookup(job_id: str, seq: int) -> JobView | None:
        try:
            return (await ask_catalog(nc, GetJob(id=job_id, after_seq=seq), timeout)).job
        except NotFound:
            return None

    return lookup
