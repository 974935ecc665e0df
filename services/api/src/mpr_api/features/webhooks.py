"""Webhooks (issue #10, 2): subscriptions to job and asset events, delivered as signed CloudEvents
(docs/webhooks.md). REST under ``/api/webhooks``, the same as GraphQL fields, and the delivery engine
that runs in every API replica (``webhooks/``)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated, Any

import msgspec
import strawberry
from graphql import GraphQLError
from litestar import Controller, Request, delete, get, patch, post
from litestar.di import Provide
from litestar.params import Parameter
from strawberry.scalars import JSON
from strawberry.types import Info

from mpr_common import subjects as s
from mpr_common.errors import BadRequest, NotFound

from ..feature import Feature
from ..graphql_errors import call as _call
from ..graphql_errors import checked as _checked
from ..settings import ApiSettings
from ..webhooks.deliveries import DeliveryLog
from ..webhooks.engine import DeliveryPolicy, WebhookEngine, catalog_lookup
from ..webhooks.model import (
    ID_PATTERN,
    DeliveryOut,
    DeliveryPage,
    WebhookCreate,
    WebhookCreated,
    WebhookList,
    WebhookOut,
    WebhookSecret,
    WebhookUpdate,
)
from ..webhooks.sealing import SecretBox
from ..webhooks.sender import Sender
from ..webhooks.service import WebhookService
from ..webhooks.ssrf import parse_networks
from ..webhooks.store import SubscriptionStore

MAX_DELIVERIES_PAGE = 200

Id = Annotated[str, Parameter(pattern=ID_PATTERN, max_length=32)]


# --- REST ----------------------------------------------------------------------------------------
class WebhookController(Controller):
    path = "/api/webhooks"
    tags = ["webhooks"]

    @post(
        "/",
        status_code=201,
        summary="Subscribe a URL to job and asset events",
        description=(
            "The answer carries the subscription's signing secret, shown this once. The URL must be "
            "https and must not resolve to a loopback, private, link-local or otherwise special address "
            "(unless WEBHOOK_ALLOW_NETWORKS / WEBHOOK_ALLOW_HTTP permit it): it is checked now and again "
            "at every delivery. Events stored from now on are sent."
        ),
    )
    async def create(self, webhooks: WebhookService, data: WebhookCreate) -> WebhookCreated:
        return await webhooks.create(data)

    @get("/", summary="Webhook subscriptions, oldest first (without their secrets)")
    async def list_webhooks(self, webhooks: WebhookService) -> WebhookList:
        return WebhookList(items=await webhooks.list_webhooks())

    @get("/{webhook_id:str}", summary="One subscription (without its secret)")
    async def get_webhook(self, webhooks: WebhookService, webhook_id: Id) -> WebhookOut:
        return await webhooks.get(webhook_id)

    @patch("/{webhook_id:str}", summary="Change a subscription's URL, filters, description, or pause it")
    async def update(self, webhooks: WebhookService, webhook_id: Id, data: WebhookUpdate) -> WebhookOut:
        return await webhooks.update(webhook_id, data)

    @delete(
        "/{webhook_id:str}", status_code=204, summary="Delete a subscription; its queued attempts are dropped"
    )
    async def delete_webhook(self, webhooks: WebhookService, webhook_id: Id) -> None:
        await webhooks.delete(webhook_id)

    @post(
        "/{webhook_id:str}/rotate-secret",
        status_code=200,
        summary="A new signing secret (shown once); the old one keeps signing for WEBHOOK_SECRET_GRACE",
    )
    async def rotate_secret(self, webhooks: WebhookService, webhook_id: Id) -> WebhookSecret:
        return await webhooks.rotate_secret(webhook_id)

    @get(
        "/{webhook_id:str}/deliveries",
        summary="The delivery log: each delivery's latest state, in the order they last changed",
        description="Page with `after` = the previous page's `next_after`.",
    )
    async def deliveries(
        self,
        webhooks: WebhookService,
        webhook_id: Id,
        after: Annotated[int, Parameter(ge=0)] = 0,
        limit: Annotated[int, Parameter(ge=1, le=MAX_DELIVERIES_PAGE)] = 50,
    ) -> DeliveryPage:
        return await webhooks.deliveries_page(webhook_id, after, limit)

    @get("/{webhook_id:str}/deliveries/{delivery_id:str}", summary="One delivery, with the CloudEvent sent")
    async def delivery(self, webhooks: WebhookService, webhook_id: Id, delivery_id: Id) -> DeliveryOut:
        return await webhooks.delivery(webhook_id, delivery_id)

    @post(
        "/{webhook_id:str}/deliveries/{delivery_id:str}/redeliver",
        status_code=202,
        summary="Send a delivered or dead delivery again (same event id, new signature, new attempts)",
    )
    async def redeliver(self, webhooks: WebhookService, webhook_id: Id, delivery_id: Id) -> DeliveryOut:
        return await webhooks.redeliver(webhook_id, delivery_id)


def provide_webhooks(request: Request) -> WebhookService:
    return request.app.state.webhooks


# --- GraphQL -------------------------------------------------------------------------------------
def _service(info: Info) -> WebhookService:
    return info.context["request"].app.state.webhooks


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


# --- lifespan ------------------------------------------------------------------------------------
@asynccontextmanager
async def lifespan(settings: ApiSettings, state: Any) -> AsyncIterator[None]:
    """The service the routes use, and the delivery engine (fan-out and attempts) of this replica."""
    nc = state["nc"]
    js = nc.jetstream()
    allowed = parse_networks(settings.webhook_allow_networks)  # a bad CIDR stops the API here
    policy = DeliveryPolicy.of(settings)
    box = SecretBox.of(settings.webhook_key, settings.nats.password)
    store = SubscriptionStore(js, await js.key_value(s.WEBHOOKS_KV), box)  # made by mpr-setup
    deliveries = DeliveryLog(nc, js)
    state["webhooks"] = WebhookService(js, store, deliveries, policy, allowed, settings.webhook_allow_http)
    sender = Sender(allowed, policy.timeout, settings.webhook_allow_http)
    engine = WebhookEngine(
        js, store, deliveries, sender, catalog_lookup(nc, settings.request_timeout), policy
    )
    engine.start()
    try:
        yield
    finally:
        await engine.stop()


FEATURE = Feature(
    "webhooks",
    routes=[WebhookController],
    dependencies={"webhooks": Provide(provide_webhooks, sync_to_thread=False)},
    lifespan=lifespan,
    graphql_query=WebhookQuery,
    graphql_mutation=WebhookMutation,
)
