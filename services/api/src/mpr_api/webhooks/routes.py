"""Webhooks over REST: subscriptions under ``/api/webhooks``, their secrets and delivery logs."""

from __future__ import annotations

from typing import Annotated

from litestar import Controller, delete, get, patch, post
from litestar.params import Parameter

from .model import (
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
from .service import WebhookService

MAX_DELIVERIES_PAGE = 200

Id = Annotated[str, Parameter(pattern=ID_PATTERN, max_length=32)]


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
