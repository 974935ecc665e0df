"""The delivery log: WEBHOOKS_STREAM keeps the latest record of each delivery on its own subject
(``mpr.webhooks.deliveries.<subscription>.<delivery>``, one message per subject), for a bounded time.
A subscription's log is read a page at a time with one batched direct get."""

from __future__ import annotations

import hashlib
import json

from nats.aio.client import Client
from nats.errors import TimeoutError as NatsTimeoutError
from nats.js import JetStreamContext
from nats.js.errors import NotFoundError

from mpr_common import subjects as s
from mpr_common.bus import publish_event
from mpr_common.codec import decode, encode
from mpr_common.errors import Unavailable

from .model import Delivery

READ_TIMEOUT = 5.0


class DeliveryLog:
    def __init__(self, nc: Client, js: JetStreamContext, stream: str = s.WEBHOOKS_STREAM) -> None:
        self.nc = nc
        self.js = js
        self.stream = stream

    async def record(self, d: Delivery, replacing: int | None = None) -> None:
        """Store ``d`` as its delivery's latest state; with ``replacing``, only if the record stored now
        is still the one at that sequence (else nats raises an APIError: someone wrote it meanwhile)."""
        # The id is the record's content: a publish retried after a lost ack is stored once.
        msg_id = hashlib.sha256(encode(d)).hexdigest()[:32]
        headers = {} if replacing is None else {"Nats-Expected-Last-Subject-Sequence": str(replacing)}
        await publish_event(
            self.js,
            s.webhook_delivery_subject(d.subscription_id, d.id),
            d,
            msg_id=msg_id,
            headers=headers,
            propagate=False,
        )

    async def get(self, subscription_id: str, delivery_id: str) -> tuple[Delivery, int] | None:
        """The delivery's latest record and its sequence in the stream."""
        try:
            msg = await self.js.get_msg(
                self.stream, subject=s.webhook_delivery_subject(subscription_id, delivery_id), direct=True
            )
        except NotFoundError:
            return None
        return decode(msg.data or b"", Delivery), msg.seq or 0

    async def page(self, subscription_id: str, after: int, limit: int) -> tuple[list[Delivery], int, bool]:
        """Up to ``limit`` records stored after sequence ``after``; the sequence to continue from, and
        whether more are stored already."""
        inbox = self.nc.new_inbox()
        sub = await self.nc.subscribe(inbox)
        request = {
            "seq": after + 1,
            "next_by_subj": s.webhook_delivery_subject(subscription_id),
            "batch": limit,
        }
        records: list[Delivery] = []
        last, pending = after, 0
        try:
            await self.nc.publish(
                f"$JS.API.DIRECT.GET.{self.stream}", json.dumps(request).encode(), reply=inbox
            )
            while True:
                try:
                    msg = await sub.next_msg(timeout=READ_TIMEOUT)
                except (TimeoutError, NatsTimeoutError):
                    raise Unavailable("the webhook delivery log did not answer in time") from None
                headers = msg.headers or {}
                status = headers.get("Status")
                if status == "404":  # nothing after ``after``
                    break
                if status == "204":  # end of the batch
                    pending = int(headers.get("Nats-Num-Pending", "0"))
                    break
                if status:
                    raise Unavailable(f"the webhook delivery log answered {status}")
                last = int(headers["Nats-Sequence"])
                records.append(decode(msg.data, Delivery))
        finally:
            await sub.unsubscribe()
        return records, last, pending > 0
