"""Webhooks: subscriptions to job and asset events, delivered as signed CloudEvents
(docs/webhooks.md). REST under ``/api/webhooks`` (``routes.py``), the same as GraphQL fields
(``graphql.py``), and the delivery engine that runs in every API replica (``engine.py``)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from mpr_common import subjects as s

from ..feature import Feature, on_mapping, provide
from ..state import ApiState
from .deliveries import DeliveryLog
from .engine import DeliveryPolicy, WebhookEngine, catalog_lookup
from .graphql import WebhookMutation, WebhookQuery
from .routes import WebhookController
from .sealing import SecretBox
from .sender import Sender
from .service import WebhookService
from .settings import WebhookSettings
from .ssrf import parse_networks
from .store import SubscriptionStore


@asynccontextmanager
async def lifespan(settings: WebhookSettings, state: ApiState) -> AsyncIterator[None]:
    """The service the routes use, and the delivery engine (fan-out and attempts) of this replica."""
    nc = state.bus()
    js = nc.jetstream()
    allowed = parse_networks(settings.webhook_allow_networks)  # a bad CIDR stops the API here
    policy = DeliveryPolicy.of(settings)
    box = SecretBox.of(settings.webhook_key, settings.nats.password)
    store = SubscriptionStore(js, await js.key_value(s.WEBHOOKS_KV), box)  # made by mpr-setup
    deliveries = DeliveryLog(nc, js)
    state.provide(WebhookService(js, store, deliveries, policy, allowed, settings.webhook_allow_http))
    sender = Sender(allowed, policy.timeout, settings.webhook_allow_http)
    engine = WebhookEngine(
        js, store, deliveries, sender, catalog_lookup(nc, settings.request_timeout), policy
    )
    engine.start()
    try:
        yield
    finally:
        await engine.stop()


# The lifespan over services by name, as in-process tests hold the app's state.
lifespan_on_mapping = on_mapping(lifespan)


FEATURE = Feature(
    "webhooks",
    routes=[WebhookController],
    dependencies={"webhooks": provide(WebhookService)},
    lifespan=lifespan,
    graphql_query=WebhookQuery,
    graphql_mutation=WebhookMutation,
)
