"""The NATS client every service connects with: nats-py's, whose JetStream contexts await each
publish's ack over one reply subscription per connection instead of one request per publish.

Why not nats-py's ``JetStreamContext.publish`` as it is: per acked publish it makes a random token, a
``wait_for`` (a second future and a timer), ``json.loads`` and a dataclass built field by field, which
came to 68 µs of client CPU per publish against 33 µs here (32 concurrent, nats-server on loopback,
this 2-core machine); every job the API accepts, every object a scan finds and every event a transcoder
sends is one. The protocol and the errors are nats-py's: a publish with a reply subject, the stream's ack
or its error there (``APIError`` and its subclasses), a 503 status when no stream takes the subject
(``NoStreamResponseError``), ``nats.errors.TimeoutError`` when no answer comes in time.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
from typing import Any

import msgspec
from nats.aio.client import Client as NatsClient
from nats.aio.msg import Msg
from nats.errors import TimeoutError as NatsTimeoutError
from nats.js import JetStreamContext
from nats.js.api import Header, PubAck
from nats.js.errors import APIError, KeyWrongLastSequenceError, NoStreamResponseError
from nats.js.kv import KeyValue

from .streams import message_ttl

log = logging.getLogger(__name__)

NO_RESPONDERS = "503"
TTL_DISABLED = 10166  # JetStream's error: the stream does not take per-message TTLs
# JetStream's errors for a write at a revision the subject is no longer at (a compare-and-set that lost).
WRONG_LAST_SEQUENCE = (10071, 10164)


def is_wrong_last_sequence(exc: BaseException) -> bool:
    """A compare-and-set that lost, however nats-py raised it."""
    return isinstance(exc, KeyWrongLastSequenceError) or getattr(exc, "err_code", None) in WRONG_LAST_SEQUENCE


async def delete_at(kv: KeyValue, key: str, revision: int) -> None:
    """Delete ``key`` only while it is still at ``revision``; :class:`KeyWrongLastSequenceError` when it
    is not. (nats-py's ``KeyValue.update`` raises that error for a lost compare-and-set, but its
    ``delete(last=…)`` raises a bare ``BadRequestError``, which a caller catching the former misses.)"""
    try:
        await kv.delete(key, last=revision)
    except KeyWrongLastSequenceError:
        raise
    except APIError as exc:
        if is_wrong_last_sequence(exc):
            raise KeyWrongLastSequenceError(description=exc.description) from None
        raise


class _Ack(msgspec.Struct):
    stream: str = ""
    seq: int = 0
    duplicate: bool = False
    domain: str | None = None
    error: dict[str, Any] | None = None


_decode_ack = msgspec.json.Decoder(_Ack).decode


class Acks:
    """Futures of the publishes waiting for their ack, answered by one subscription on
    ``<inbox>.*`` (made at the first publish; nats-py subscribes it again after a reconnect)."""

    def __init__(self, nc: NatsClient) -> None:
        self._nc = nc
        self._prefix: str | None = None
        self._subscribing = asyncio.Lock()
        self._waiting: dict[str, asyncio.Future[Msg]] = {}
        self._tokens = itertools.count()
        # Set once a stream refused a per-message TTL (set up before NATS 2.11, or mpr-setup not run
        # since): events are then published without one, kept by the stream's own limits.
        self.ttl_refused = False

    async def _reply_prefix(self) -> str:
        if self._prefix is None:
            async with self._subscribing:
                if self._prefix is None:
                    prefix = self._nc.new_inbox() + "."
                    await self._nc.subscribe(prefix + "*", cb=self._answered)
                    self._prefix = prefix
        return self._prefix

    async def _answered(self, msg: Msg) -> None:
        assert self._prefix is not None
        waiter = self._waiting.pop(msg.subject[len(self._prefix) :], None)
        if waiter is not None and not waiter.done():
            waiter.set_result(msg)

    async def publish(
        self, subject: str, payload: bytes, headers: dict[str, str] | None, timeout: float
    ) -> PubAck:
        prefix = await self._reply_prefix()
        token = str(next(self._tokens))
        waiter: asyncio.Future[Msg] = asyncio.get_running_loop().create_future()
        self._waiting[token] = waiter
        try:
            await self._nc.publish(subject, payload, reply=prefix + token, headers=headers)
            async with asyncio.timeout(timeout):
                msg = await waiter
        except TimeoutError:
            raise NatsTimeoutError from None
        finally:
            self._waiting.pop(token, None)
        if not msg.data and msg.headers and msg.headers.get("Status") == NO_RESPONDERS:
            raise NoStreamResponseError
        ack = _decode_ack(msg.data)
        if ack.error is not None:
            raise APIError.from_error(ack.error)
        return PubAck(stream=ack.stream, seq=ack.seq, domain=ack.domain, duplicate=ack.duplicate)


class JetStream(JetStreamContext):
    """nats-py's JetStream context (KV, streams, consumers as they are) whose ``publish`` goes
    through the connection's :class:`Acks`."""

    def __init__(self, conn: NatsClient, acks: Acks, **options: Any) -> None:
        super().__init__(conn, **options)
        self._acks = acks

    async def publish(
        self,
        subject: str,
        payload: bytes = b"",
        timeout: float | None = None,
        stream: str | None = None,
        headers: dict[str, Any] | None = None,
        msg_ttl: float | None = None,
    ) -> PubAck:
        if stream is not None:
            headers = {**(headers or {}), Header.EXPECTED_STREAM: stream}
        timeout = self._timeout if timeout is None else timeout
        ttl = msg_ttl
        if ttl is None and not self._acks.ttl_refused and not (headers and Header.MSG_TTL in headers):
            ttl = message_ttl(subject)  # job events expire; job requests stay until retired
        if ttl is None:
            return await self._acks.publish(subject, payload, headers, timeout)
        # seconds, as nats-py sends it (NATS 2.11+)
        with_ttl = {**(headers or {}), Header.MSG_TTL: str(int(ttl))}
        try:
            return await self._acks.publish(subject, payload, with_ttl, timeout)
        except APIError as exc:
            if msg_ttl is not None or exc.err_code != TTL_DISABLED:
                raise
            log.warning(
                "%s takes no per-message TTL (run mpr-setup on NATS 2.11+): events kept without", subject
            )
            self._acks.ttl_refused = True
            return await self._acks.publish(subject, payload, headers, timeout)


class Client(NatsClient):
    """nats-py's client; its ``jetstream()`` contexts share one :class:`Acks`, and it says when it
    comes back after losing its server (:meth:`next_reconnect`)."""

    def __init__(self) -> None:
        super().__init__()
        self._acks: Acks | None = None
        self._back = asyncio.Event()

    async def connect(self, **options: Any) -> None:  # type: ignore[override]
        theirs = options.pop("reconnected_cb", None)

        async def reconnected() -> None:
            back, self._back = self._back, asyncio.Event()
            back.set()
            if theirs is not None:
                await theirs()

        await super().connect(reconnected_cb=reconnected, **options)

    def next_reconnect(self) -> asyncio.Event:
        """Set once this connection is back after losing its server. A pull request waiting on the server
        died with the old connection: whoever waits on its answer should ask again instead of waiting
        out its expiry."""
        return self._back

    def jetstream(self, **options: Any) -> JetStream:
        if self._acks is None:
            self._acks = Acks(self)
        return JetStream(self, self._acks, **options)
