"""What the FastStream services (scanner, catalog) share: the broker, binding to the durable consumers
that ``mpr-setup`` owns, the one rule for settling a JetStream message, dead letters, and request
handlers that answer errors as codes. Needs ``faststream[nats]``, which only those services install."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

from faststream import AckPolicy
from faststream.nats import JStream, NatsBroker, NatsMessage, NatsResponse, NatsRouter, PullSub
from faststream.nats.opentelemetry import NatsTelemetryMiddleware
from faststream.nats.security import NatsSecurity, NatsToken, NatsUserPassword
from faststream.nats.subscriber import PullStreamSubscriber
from nats.aio.msg import Msg

from .codec import DecodeError, ValidationError
from .errors import BadRequest, MprError, error_headers
from .identities import INBOX_ROOT
from .settings import NatsSettings

log = logging.getLogger(__name__)

DeadLetterFn = Callable[[Msg, str], Awaitable[None]]
RETRY_DELAY = 2.0


def make_broker(settings: NatsSettings, telemetry: bool = True) -> NatsBroker:
    security: NatsSecurity | None = None
    tls = settings.ssl_context()
    if settings.user:
        security = NatsUserPassword(settings.user, settings.password or "", ssl_context=tls)
    elif settings.token:
        security = NatsToken(settings.token, ssl_context=tls)
    elif tls is not None:
        security = NatsSecurity(ssl_context=tls)
    return NatsBroker(
        [u.strip() for u in settings.url.split(",") if u.strip()],
        security=security,
        # replies to the identity's own inboxes (mpr_common.identities); nats-py's default without one
        inbox_prefix=settings.inbox_prefix() or INBOX_ROOT,
        logger=None,  # our own JSON logs; FastStream's per-message logging is too hot a path
        middlewares=[NatsTelemetryMiddleware()] if telemetry else [],
        max_reconnect_attempts=-1,
        reconnect_time_wait=0.5,  # type: ignore[arg-type]  # seconds: FastStream's hint says int
    )


def broker_connected(broker: NatsBroker) -> bool:
    conn = getattr(broker, "_connection", None)
    return bool(conn is not None and conn.is_connected)


def pull_subscriber(
    registrar: NatsBroker | NatsRouter,
    subject: str,
    stream: str,
    durable: str,
    identity_inbox: str | None = None,
    **kw: Any,
) -> PullStreamSubscriber:
    """Bind to a durable pull consumer made by ``mpr-setup`` (never declared here), one message per
    call. (Batches go through :class:`mpr_common.bus.BatchConsumer`.) On a router, ``identity_inbox``
    is the connection's inbox prefix (``NatsSettings.inbox_prefix()``); a broker knows its own."""
    # A pull subscription's fetches are answered on an inbox that FastStream names with a prefix of its
    # own (``_INBOX.`` by default), not the connection's: it must be the identity's, the only inbox it
    # may read.
    connection = getattr(registrar, "_connection_kwargs", {})
    prefix = identity_inbox or connection.get("inbox_prefix") or INBOX_ROOT
    kw.setdefault("inbox_prefix", f"{prefix}.".encode())
    return registrar.subscriber(
        subject,
        stream=JStream(stream, declare=False),
        durable=durable,
        pull_sub=PullSub(batch_size=16, timeout=5),
        ack_policy=AckPolicy.MANUAL,
        **kw,
    )


async def settle(
    msg: NatsMessage,
    work: Callable[[], Awaitable[None]],
    dead_letter: DeadLetterFn,
    retry_delay: float = RETRY_DELAY,
) -> None:
    """The rule for one JetStream message: ack on success; an undecodable or invalid message is
    dead-lettered and acked (redelivery cannot help); any other failure is NAKed for a later retry."""
    try:
        await work()
    except (DecodeError, ValidationError, BadRequest) as exc:
        await dead_letter(msg.raw_message, f"undecodable: {exc}")
        await msg.ack()
        return
    except Exception:
        log.exception("handling %s failed; will be redelivered", msg.raw_message.subject)
        await msg.nack(delay=retry_delay)
        return
    await msg.ack()


Handler = Callable[[NatsMessage], Awaitable[bytes]]


def answers(handler: Handler) -> Callable[[NatsMessage], Awaitable[NatsResponse]]:
    """A request handler always replies: with its result, or with an error code and message in
    ``Nats-Service-Error-Code`` / ``Nats-Service-Error`` (decoded by :func:`mpr_common.bus.request`)."""

    async def wrapped(msg: NatsMessage) -> NatsResponse:
        try:
            return NatsResponse(await handler(msg))
        except (DecodeError, ValidationError) as exc:
            err: MprError = BadRequest(f"bad request: {exc}")
        except MprError as exc:
            err = exc
        except Exception as exc:
            log.exception("request on %s failed", msg.raw_message.subject)
            err = MprError(f"{type(exc).__name__} in the service")
        return NatsResponse(b"", headers=error_headers(err))

    wrapped.__name__ = handler.__name__
    wrapped.__doc__ = handler.__doc__
    return wrapped
