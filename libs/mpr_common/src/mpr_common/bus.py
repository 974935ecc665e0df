"""The messaging kit every service uses: connecting, publishing events with their de-duplication ids,
and request/reply whose errors travel as codes (see :mod:`mpr_common.errors`)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar

from nats.aio.client import Client as NatsClient
from nats.aio.msg import Msg
from nats.errors import NoRespondersError
from nats.errors import TimeoutError as NatsTimeoutError
from nats.js import JetStreamContext
from nats.js.api import PubAck
from nats.js.errors import NoStreamResponseError

from .codec import decoder, encode
from .errors import Unavailable, error_from_headers
from .events import DeadLetter
from .jetstream import Client
from .settings import NatsSettings
from .tracing import inject

log = logging.getLogger(__name__)
T = TypeVar("T")

MSG_ID = "Nats-Msg-Id"
PUBLISH_TIMEOUT = 5.0
PUBLISH_ATTEMPTS = 8
# What a JetStream write meets while a stream elects a leader or the broker restarts: worth retrying.
TRANSIENT = (TimeoutError, NatsTimeoutError, NoStreamResponseError)


async def retry_transient(op: Callable[[], Awaitable[T]], what: str, attempts: int = PUBLISH_ATTEMPTS) -> T:
    """Run ``op`` again after a transient failure, backing off (0.2, 0.4, … 2 s; about 9 s in all:
    longer than a stream's leader election).
    Only for idempotent writes: a publish with a de-duplication id, a KV put of the same value."""
    for attempt in range(1, attempts + 1):
        try:
            return await op()
        except TRANSIENT as exc:
            if attempt == attempts:
                raise
            log.warning(
                "%s failed (%s; attempt %d/%d); retrying", what, type(exc).__name__, attempt, attempts
            )
            await asyncio.sleep(min(2.0, 0.2 * 2 ** (attempt - 1)))
    raise AssertionError("unreachable")


async def connect(settings: NatsSettings, name: str, **extra: Any) -> Client:
    """A connection whose JetStream contexts publish through :mod:`mpr_common.jetstream`."""
    opts: dict[str, Any] = {**settings.connect_options(name), **extra}
    nc = Client()
    await nc.connect(**opts)
    return nc


async def publish_event(
    js: JetStreamContext,
    subject: str,
    event: Any,
    *,
    msg_id: str | None = None,
    headers: dict[str, str] | None = None,
    timeout: float = PUBLISH_TIMEOUT,
    attempts: int = PUBLISH_ATTEMPTS,
    propagate: bool = True,
) -> PubAck:
    """Publish to JetStream and wait for the stream's ack (stored, not just sent).

    With a ``msg_id`` a slow ack is retried: the stream drops the copy if the first one was stored,
    so a retry can never store a fact twice. Without one there is a single attempt. ``propagate=False``
    sends ``headers`` as given (a caller publishing many events injects the trace context once)."""
    hdrs = inject(headers) if propagate else dict(headers or {})
    if msg_id:
        hdrs[MSG_ID] = msg_id
    payload = encode(event)

    async def publish() -> PubAck:
        return await js.publish(subject, payload, headers=hdrs or None, timeout=timeout)

    return await retry_transient(publish, f"publish to {subject}", attempts if msg_id else 1)


async def dead_letter(
    js: JetStreamContext, raw: Msg, error: str, subject: str, job_id: str | None = None
) -> None:
    """Keep a message given up on (payload included) in MPR_DLQ under ``subject`` (each consumer's own);
    de-duplicated per stream message and dead-letter subject: the catalog and a transcoder giving up on
    the same message each keep theirs."""
    try:
        meta = raw.metadata
        seq, deliveries = meta.sequence.stream, meta.num_delivered
    except Exception:  # not a JetStream delivery (in-process tests)
        seq, deliveries = 0, 0
    letter = DeadLetter(
        subject=raw.subject,
        stream_seq=seq or None,
        deliveries=deliveries,
        error=error,
        payload=raw.data.decode("utf-8", "replace"),
        job_id=job_id,
    )
    await publish_event(js, subject, letter, msg_id=f"dlq-{subject}-{raw.subject}-{seq}")


async def request(nc: NatsClient, subject: str, payload: Any, reply_type: type[T], timeout: float) -> T:
    """Request/reply with a typed answer; an error answer raises the error it names."""
    service = subject.split(".")[1]
    try:
        msg = await nc.request(subject, encode(payload), timeout=timeout)
    except NoRespondersError:
        raise Unavailable(f"no {service} service is running") from None
    except (TimeoutError, NatsTimeoutError):
        raise Unavailable(f"the {service} service did not answer in time") from None
    error = error_from_headers(msg.headers)
    if error is not None:
        raise error
    return decoder(reply_type).decode(msg.data)


BatchHandler = Callable[[list[Msg]], Awaitable[None]]

# How long an idle pull waits on the server before it is made again. A waiting pull is answered the
# moment a message comes and is given up at once on stop, so this sets only how often an idle consumer
# asks: every request costs the server and the client a wake-up, and a stack has a dozen idle consumers.
# A wait lost with its server (a reconnect) is made again at once (:func:`fetch_or_reconnect`); one lost
# with a stream's leader in a cluster (no reconnect, no answer) is made again when it expires.
LONG_POLL_SECONDS = 5.0


async def fetch_or_reconnect(
    js: JetStreamContext, sub: JetStreamContext.PullSubscription, batch: int
) -> list[Msg]:
    """``sub.fetch(batch)`` with a long poll (:data:`LONG_POLL_SECONDS`), given up as a timeout when the
    connection comes back meanwhile: the pull request died with the old connection, and waiting out its
    expiry would leave the consumer idle that long after every broker restart. What the server sends
    after a fetch is given up is queued on the subscription and taken by the next fetch."""
    nc = getattr(js, "_nc", None)
    if not isinstance(nc, Client):
        return await sub.fetch(batch, timeout=LONG_POLL_SECONDS)
    fetch = asyncio.ensure_future(sub.fetch(batch, timeout=LONG_POLL_SECONDS))
    back = asyncio.ensure_future(nc.next_reconnect().wait())
    try:
        await asyncio.wait({fetch, back}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        back.cancel()
        if not fetch.done():
            fetch.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await fetch
    if fetch.cancelled():
        raise NatsTimeoutError
    return fetch.result()


class BatchConsumer:
    """Pull a durable consumer (made by ``mpr-setup``) in batches and hand each batch to ``handle``,
    which settles every message (see :func:`settle_batch`).

    nats-py directly, not a FastStream batch subscriber: FastStream fills a batch by re-fetching with
    ever shorter timeouts, and under a trickle of messages that left deliveries unhandled until
    ack_wait (reproduced in tests/system/test_batch_consumer.py). A long-poll fetch returns as soon as
    anything is there (its first request asks for what is waiting or else the first to come), so the
    first message after a quiet spell is handled at once, however long the idle wait; after a partial
    batch the next fetch waits ``linger`` seconds, so that under load batches grow (one transaction
    per ~100 messages instead of per ~15) at the cost of that much latency."""

    def __init__(
        self,
        js: JetStreamContext,
        stream: str,
        durable: str,
        handle: BatchHandler,
        batch: int = 500,
        linger: float = 0.02,
    ) -> None:
        self.js = js
        self.stream = stream
        self.durable = durable
        self.handle = handle
        self.batch = batch
        self.linger = linger
        self._task: asyncio.Task[None] | None = None
        self._handling: asyncio.Future[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name=f"pull-{self.durable}")

    async def stop(self) -> None:
        """Stop fetching; a batch being handled is finished (its acks sent) first."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._handling is not None and not self._handling.done():
            await self._handling

    async def _run(self) -> None:
        sub = None
        while sub is None:
            try:
                sub = await self.js.pull_subscribe_bind(self.durable, stream=self.stream)
            except Exception as exc:
                log.warning("waiting for consumer %s (run mpr-setup): %s", self.durable, exc)
                await asyncio.sleep(1)
        try:
            while True:
                try:
                    msgs = await fetch_or_reconnect(self.js, sub, self.batch)
                except (TimeoutError, NatsTimeoutError):
                    continue
                except asyncio.CancelledError:
                    raise
                except Exception as exc:  # reconnecting: unacked messages come back after ack_wait
                    log.debug("fetch from %s failed: %s", self.durable, exc)
                    await asyncio.sleep(0.5)
                    continue
                # Shielded: a stop while handling lets the commit and its acks finish (stop awaits it).
                self._handling = asyncio.ensure_future(self.handle(msgs))
                await asyncio.shield(self._handling)
                if len(msgs) < self.batch:
                    await asyncio.sleep(self.linger)
        finally:
            with contextlib.suppress(Exception):
                await sub.unsubscribe()


async def settle_batch(
    msgs: Sequence[Msg], work: Callable[[], Awaitable[None]], retry_delay: float = 2.0
) -> None:
    """The settling rule for a batch handled in one transaction: ack each after the commit, or NAK
    all for a later retry. (``work`` dead-letters undecodable messages itself before it commits.)"""
    try:
        await work()
    except Exception:
        log.exception("batch of %d on %s failed; will be redelivered", len(msgs), msgs[0].subject)
        for m in msgs:
            with contextlib.suppress(Exception):
                await m.nak(delay=retry_delay)
        return
    for m in msgs:
        with contextlib.suppress(Exception):
            await m.ack()
