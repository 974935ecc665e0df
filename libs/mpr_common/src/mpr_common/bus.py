"""Connecting to NATS and publishing typed events."""

from __future__ import annotations

from typing import Any

import nats
from nats.aio.client import Client
from nats.js import JetStreamContext

from .codec import encode
from .settings import NatsSettings
from .tracing import inject


async def connect(settings: NatsSettings, name: str, **extra: Any) -> Client:
    opts = settings.connect_options(name)
    opts.update(extra)
    return await nats.connect(**opts)


async def publish_event(
    js: JetStreamContext,
    subject: str,
    event: Any,
    *,
    msg_id: str | None = None,
    headers: dict[str, str] | None = None,
    timeout: float = 5.0,
) -> Any:
    """Publish to JetStream and wait for the stream's ack (so it is stored, not just sent)."""
    hdrs = inject(headers)
    if msg_id:
        hdrs["Nats-Msg-Id"] = msg_id
    return await js.publish(subject, encode(event), headers=hdrs or None, timeout=timeout)
