"""Webhooks in GraphQL: ``webhooks``, ``webhook``, ``webhookDeliveries`` and the mutations that create,
change, delete, rotate and redeliver."""

from __future__ import annotations

from typing import Annotated, Any

import msgspec
import strawberry
from graphql import GraphQLError
from strawberry.scalars import JSON
from strawberry.types import Info

from mpr_common.errors import BadRequest, NotFound

from ..graphql.context import service
from ..graphql.errors import call as _call
from ..graphql.errors import checked as _checked
from .model import (
    ID_PATTERN,
    DeliveryOut,
    DeliveryPage,
    WebhookCreate,
    WebhookCreated,
    WebhookOut,
    WebhookSecret,
    WebhookUpdate,
)
from .routes import MAX_DELIVERIES_PAGE
from .service import WebhookService


def _service(info: Info) -> WebhookService:
    return service(info, WebhookService)


def _id(value: str, what: str = "id") -> str:
    return _checked(value, Annotated[str, msgspec.Meta(pattern=ID_PATTERN)], what)


@strawberry.type(name="Webhook")
class WebhookType:
    id: str
    url: str
    types: list[str]
    kinds: list[str]
    key_prefix: str
    description: str
    active: bool
    created_at: float
    secret_rotated_at: float | None

    @classmethod
    def of(cls, w: WebhookOut) -> WebhookType:
        return cls(**msgspec.structs.asdict(w))


@strawberry.type
class WebhookWithSecret:
    webhook: WebhookType
    secret: str


@strawberry.type(name="WebhookSecret")
class WebhookSecretType:
    secret: str
    previous_valid_until: float | None


@strawberry.type
class WebhookAttempt:
    at: float
    status_code: int | None
    latency_ms: float
    error: str | None
    series: int


@strawberry.type
class WebhookDelivery:
    id: str
    subscription_id: str
    type: str
    subject: str
    state: str
    attempts: list[WebhookAttempt]
    next_attempt_at: float | None
    redeliveries: int
    created_at: float
    updated_at: float
    event: JSON

    @classmethod
    def of(cls, d: DeliveryOut) -> WebhookDelivery:
        fields = msgspec.structs.asdict(d)
        fields["attempts"] = [WebhookAttempt(**msgspec.structs.asdict(a)) for a in d.attempts]
        return cls(**fields)


@strawberry.type
class WebhookDeliveryPage:
    items: list[WebhookDelivery]
    next_after: int
    more: bool


@strawberry.input
class WebhookInput:
    url: str
    types: list[str]
    kinds: list[str] = strawberry.field(default_factory=list)
    key_prefix: str = ""
    description: str = ""


@strawberry.input
class WebhookPatch:
    url: str | None = None
    types: list[str] | None = None
    kinds: list[str] | None = None
    key_prefix: str | None = None
    description: str | None = None
    active: bool | None = None


def _fields(obj: Any) -> dict[str, Any]:
    return {k: v for k, v in vars(obj).items() if v is not None}


@strawberry.type
class WebhookQuery:
    @strawberry.field(description="Webhook subscriptions (without their secrets)")
    async def webhooks(self, info: Info) -> list[WebhookType]:
        return [WebhookType.of(w) for w in await _call(_service(info).list_webhooks())]

    @strawberry.field(description="One subscription; null if there is none with that id")
    async def webhook(self, info: Info, id: str) -> WebhookType | None:
        try:
            return WebhookType.of(await _service(info).get(_id(id)))
        except NotFound:
            return None

    @strawberry.field(description="A subscription's delivery log, a page at a time (after: nextAfter)")
    async def webhook_deliveries(
        self, info: Info, id: str, after: int = 0, limit: int = 50
    ) -> WebhookDeliveryPage:
        if not (1 <= limit <= MAX_DELIVERIES_PAGE) or after < 0:
            raise GraphQLError(
                f"limit must be 1-{MAX_DELIVERIES_PAGE} and after >= 0", extensions={"code": BadRequest.name}
            )
        page: DeliveryPage = await _call(_service(info).deliveries_page(_id(id), after, limit))
        return WebhookDeliveryPage(
            items=[WebhookDelivery.of(d) for d in page.items], next_after=page.next_after, more=page.more
        )


@strawberry.type
class WebhookMutation:
    @strawberry.mutation(description="Subscribe a URL; the answer carries its secret, shown this once")
    async def create_webhook(self, info: Info, webhook: WebhookInput) -> WebhookWithSecret:
        body = _checked(_fields(webhook), WebhookCreate, "webhook")
        created: WebhookCreated = await _call(_service(info).create(body))
        return WebhookWithSecret(webhook=WebhookType.of(created.webhook), secret=created.secret)

    @strawberry.mutation
    async def update_webhook(self, info: Info, id: str, patch: WebhookPatch) -> WebhookType:
        body = _checked(_fields(patch), WebhookUpdate, "patch")
        return WebhookType.of(await _call(_service(info).update(_id(id), body)))

    @strawberry.mutation
    async def delete_webhook(self, info: Info, id: str) -> bool:
        await _call(_service(info).delete(_id(id)))
        return True

    @strawberry.mutation(description="A new secret (shown once); the old one keeps signing a while")
    async def rotate_webhook_secret(self, info: Info, id: str) -> WebhookSecretType:
        out: WebhookSecret = await _call(_service(info).rotate_secret(_id(id)))
        return WebhookSecretType(secret=out.secret, previous_valid_until=out.previous_valid_until)

    @strawberry.mutation
    async def redeliver_webhook(self, info: Info, id: str, delivery_id: str) -> WebhookDelivery:
        out = await _call(_service(info).redeliver(_id(id), _id(delivery_id, "deliveryId")))
        return WebhookDelivery.of(out)
