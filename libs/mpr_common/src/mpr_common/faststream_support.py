"""What the FastStream services (scanner, catalog) share: the broker, and how a JetStream message
is settled. Needs the ``faststream[nats]`` package, which only those services install."""

from __future__ import annotations

import logging
import warnings
from collections.abc import Awaitable, Callable
from typing import Any

from .codec import DecodeError, ValidationError, encode
from .events import DeadLetter
from .settings import NatsSettings
from .subjects import DLQ_STREAM

log = logging.getLogger(__name__)

# FastStream warns that a durable push consumer does not scale; ours have a queue group of the same name.
warnings.filterwarnings("ignore", message=".*Push consumer with the `durable` option.*")

DeadLetterFn = Callable[[Any, str], Awaitable[None]]


def make_broker(settings: NatsSettings) -> Any:
    from faststream.nats import NatsBroker
    from faststream.nats.opentelemetry import NatsTelemetryMiddleware

    return NatsBroker(
        [u.strip() for u in settings.url.split(",") if u.strip()],
        token=settings.token,
        logger=None,  # our own JSON logs; FastStream's per-message logging is too hot a path
        middlewares=[NatsTelemetryMiddleware()],
        max_reconnect_attempts=-1,
        reconnect_time_wait=0.5,
    )


def broker_connected(broker: Any) -> bool:
    conn = getattr(broker, "_connection", None)
    return bool(conn is not None and conn.is_connected)


def dead_letter_publisher(broker: Any, subject: str) -> DeadLetterFn:
    """``await dead_letter(msg, reason)`` keeps an unusable message (payload included) in MPR_DLQ."""

    async def dead_letter(msg: Any, error: str) -> None:
        raw = msg.raw_message
        meta = raw.metadata if raw.reply else None
        letter = DeadLetter(
            subject=raw.subject,
            error=error,
            payload=raw.data.decode("utf-8", "replace"),
            stream_seq=meta.sequence.stream if meta else None,
            deliveries=meta.num_delivered if meta else 0,
        )
        await broker.publish(encode(letter), subject, stream=DLQ_STREAM)

    return dead_letter


async def settle(
    msg: Any, work: Callable[[], Awaitable[None]], dead_letter: DeadLetterFn, retry_delay: float = 2.0
) -> None:
    """Run ``work`` for one JetStream message: ack on success; an undecodable message is dead-lettered
    and acked (redelivery cannot help); any other failure is NAKed for a later retry."""
    try:
        await work()
    except (DecodeError, ValidationError) as exc:
        await dead_letter(msg, f"undecodable: {exc}")
        await msg.ack()
        return
    except Exception:
        log.exception("handling %s failed; will be redelivered", msg.raw_message.subject)
        await msg.nack(delay=retry_delay)
        return
    await msg.ack()


def durable_subscriber(
    broker: Any, subject: str, stream: str, durable: str, max_deliver: int = 10, ack_wait: float = 30
) -> Any:
    """A push consumer shared by every replica of a service: the durable name is also the queue
    group, delivery starts at the stream's beginning, and handlers settle messages themselves."""
    from faststream import AckPolicy
    from faststream.nats import ConsumerConfig, DeliverPolicy, JStream

    return broker.subscriber(
        subject,
        stream=JStream(stream, declare=False),
        durable=durable,
        queue=durable,
        deliver_policy=DeliverPolicy.ALL,
        ack_policy=AckPolicy.MANUAL,
        config=ConsumerConfig(max_deliver=max_deliver, ack_wait=ack_wait),
    )
