"""What the REST routes and the GraphQL fields do with webhooks: one implementation for both."""

from __future__ import annotations

import time
import uuid
from collections.abc import Sequence

import httpcore
import msgspec
from nats.js import JetStreamContext
from nats.js.errors import APIError

from mpr_common import subjects as s
from mpr_common.bus import publish_event
from mpr_common.errors import Conflict, NotFound, Unavailable

from ..http.field_errors import FieldError
from .deliveries import DeliveryLog
from .engine import DeliveryPolicy, task_msg_id
from .model import (
    MAX_SUBSCRIPTIONS,
    DeliveryOut,
    DeliveryPage,
    Subscription,
    WebhookCreate,
    WebhookCreated,
    WebhookOut,
    WebhookSecret,
    WebhookUpdate,
)
from .signing import new_secret
from .ssrf import AddressRefused, Network, check_url, resolve_checked
from .store import SubscriptionStore

SOURCE_STREAMS = (s.JOBS_STREAM, s.ASSETS_STREAM)
_IN_FLIGHT = ("pending", "retrying")


class WebhookService:
    def __init__(
        self,
        js: JetStreamContext,
        store: SubscriptionStore,
        deliveries: DeliveryLog,
        policy: DeliveryPolicy,
        allowed: Sequence[Network],
        allow_http: bool,
    ) -> None:
        self.js = js
        self.store = store
        self.deliveries = deliveries
        self.policy = policy
        self.allowed = list(allowed)
        self.allow_http = allow_http

    async def _checked_url(self, url: str) -> str:
        """Refused now rather than at its first delivery: the form, and what the host resolves to."""
        try:
            parsed = check_url(url, self.allow_http)
            await resolve_checked(
                parsed.host, parsed.port or (443 if parsed.scheme == "https" else 80), self.allowed
            )
        except AddressRefused as exc:
            raise FieldError(f"url: {exc}", "url") from None
        except httpcore.ConnectError as exc:  # does not resolve
            raise FieldError(f"url: {exc}", "url") from None
        return url

    async def _get(self, sub_id: str) -> Subscription:
        sub = await self.store.get(sub_id)
        if sub is None:
            raise NotFound(f"webhook {sub_id} not found")
        return sub

    async def create(self, body: WebhookCreate) -> WebhookCreated:
        url = await self._checked_url(body.url)
        if len(await self.store.all()) >= MAX_SUBSCRIPTIONS:
            raise Conflict(f"there are {MAX_SUBSCRIPTIONS} webhooks already: delete one first")
        # Events stored before now are not sent to it, however far behind the dispatcher is.
        start = {name: (await self.js.stream_info(name)).state.last_seq for name in SOURCE_STREAMS}
        sub_id, secret = uuid.uuid4().hex, new_secret()
        sub = Subscription(
            id=sub_id,
            url=url,
            types=list(dict.fromkeys(body.types)),
            kinds=list(dict.fromkeys(body.kinds)),
            key_prefix=body.key_prefix,
            description=body.description,
            created_at=time.time(),
            secret=self.store.box.seal(secret, sub_id),  # shown once below, kept sealed
            start_seqs=start,
        )
        await self.store.create(sub)
        return WebhookCreated(webhook=WebhookOut.of(sub), secret=secret)

    async def list_webhooks(self) -> list[WebhookOut]:
        return [WebhookOut.of(sub) for sub in await self.store.all()]

    async def get(self, sub_id: str) -> WebhookOut:
        return WebhookOut.of(await self._get(sub_id))

    async def update(self, sub_id: str, body: WebhookUpdate) -> WebhookOut:
        url = await self._checked_url(body.url) if body.url is not None else None
        changes = {
            name: (list(dict.fromkeys(value)) if isinstance(value, list) else value)
            for name, value in msgspec.structs.asdict(body).items()
            if value is not None
        }
        if url is not None:
            changes["url"] = url
        sub = await self.store.update(sub_id, lambda old: msgspec.structs.replace(old, **changes))
        if sub is None:
            raise NotFound(f"webhook {sub_id} not found")
        return WebhookOut.of(sub)

    async def delete(self, sub_id: str) -> None:
        if not await self.store.delete(sub_id):
            raise NotFound(f"webhook {sub_id} not found")

    async def rotate_secret(self, sub_id: str) -> WebhookSecret:
        """A new secret; the old one keeps signing alongside it for WEBHOOK_SECRET_GRACE seconds."""
        now = time.time()
        secret = new_secret()
        grace = self.policy.secret_grace

        def rotate(old: Subscription) -> Subscription:
            return msgspec.structs.replace(
                old,
                secret=self.store.box.seal(secret, old.id),
                previous_secret=old.secret if grace > 0 else None,
                previous_secret_until=now + grace if grace > 0 else 0.0,
                secret_rotated_at=now,
            )

        if await self.store.update(sub_id, rotate) is None:
            raise NotFound(f"webhook {sub_id} not found")
        return WebhookSecret(secret=secret, previous_valid_until=now + grace if grace > 0 else None)

    async def deliveries_page(self, sub_id: str, after: int, limit: int) -> DeliveryPage:
        await self._get(sub_id)
        records, last, more = await self.deliveries.page(sub_id, after, limit)
        return DeliveryPage(items=[DeliveryOut.of(d) for d in records], next_after=last, more=more)

    async def delivery(self, sub_id: str, delivery_id: str) -> DeliveryOut:
        found = await self.deliveries.get(sub_id, delivery_id)
        if found is None:
            raise NotFound(f"delivery {delivery_id} of webhook {sub_id} not found")
        return DeliveryOut.of(found[0])

    async def redeliver(self, sub_id: str, delivery_id: str) -> DeliveryOut:
        """Send the same CloudEvent again (same id, a new timestamp and signature), with a new series of
        attempts. Refused while the delivery is still pending or retrying."""
        await self._get(sub_id)
        found = await self.deliveries.get(sub_id, delivery_id)
        if found is None:
            raise NotFound(f"delivery {delivery_id} of webhook {sub_id} not found")
        old, seq = found
        if old.state in _IN_FLIGHT:
            raise Conflict(f"delivery {delivery_id} is {old.state} already")
        now = time.time()
        new = msgspec.structs.replace(
            old, state="pending", series=old.series + 1, attempt=1, not_before=0.0, updated_at=now
        )
        try:  # claims the redelivery: of two at once, the second finds the record changed
            await self.deliveries.record(new, replacing=seq)
        except APIError:
            raise Conflict(f"delivery {delivery_id} is being redelivered already") from None
        try:
            await publish_event(self.js, s.WEBHOOK_TASKS, new, msg_id=task_msg_id(new), propagate=False)
        except Exception:
            # As it was (updated now, so not taken for a repeat of its earlier record): it may be
            # redelivered again.
            await self.deliveries.record(msgspec.structs.replace(old, updated_at=time.time()))
            raise Unavailable("the redelivery could not be queued; try again") from None
        return DeliveryOut.of(new)
