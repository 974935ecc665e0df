"""Automation: job templates and rules over REST (/api/templates, /api/rules) and GraphQL,
and the rule engine every API replica runs on the shared ``rules`` consumer (see automation/engine.py)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from mpr_common import subjects as s
from mpr_common.bus import BatchConsumer
from mpr_common.outputs import OutputOwners

from ..assets.service import AssetService
from ..feature import Feature, provide
from ..http.settings import HttpSettings
from ..state import ApiState
from .engine import RuleEngine
from .graphql import AutomationMutation, AutomationQuery
from .routes import RuleController, TemplateController
from .service import AutomationService
from .store import FiringStore, RuleStore, TemplateStore

RULES_BATCH = 100


def services(settings: HttpSettings, state: ApiState) -> tuple[AutomationService, RuleEngine]:
    """The automation service (handlers) and the rule engine, over the app's NATS connection."""
    js = state.bus().jetstream()
    templates, rules, firings = TemplateStore(js), RuleStore(js), FiringStore(js)
    service = AutomationService(settings, templates, rules, firings, state.get(AssetService))
    engine = RuleEngine(settings, js, rules, templates, firings, state.get(OutputOwners))
    return service, engine


@asynccontextmanager
async def lifespan(settings: HttpSettings, state: ApiState) -> AsyncIterator[None]:
    service, engine = services(settings, state)
    state.provide(service)
    consumers = [
        BatchConsumer(engine.js, s.ASSETS_STREAM, s.RULES_DURABLE, engine.handle, batch=RULES_BATCH),
        BatchConsumer(engine.js, s.JOBS_STREAM, s.RULES_JOBS_DURABLE, engine.handle_jobs, batch=RULES_BATCH),
    ]
    for consumer in consumers:
        consumer.start()
    try:
        yield
    finally:
        for consumer in consumers:
            await consumer.stop()


FEATURE = Feature(
    "automation",
    routes=[TemplateController, RuleController],
    dependencies={"automation": provide(AutomationService)},
    lifespan=lifespan,
    graphql_query=AutomationQuery,
    graphql_mutation=AutomationMutation,
)
