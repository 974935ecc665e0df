"""Automation (issue #10): job templates and rules over REST (/api/templates, /api/rules) and GraphQL,
and the rule engine every API replica runs on the shared ``rules`` consumer (see automation/engine.py)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any

from litestar import Request
from litestar.di import Provide

from mpr_common import subjects as s
from mpr_common.bus import BatchConsumer

from ..automation.engine import RuleEngine
from ..automation.graphql import AutomationMutation, AutomationQuery
from ..automation.routes import RuleController, TemplateController
from ..automation.service import AutomationService
from ..automation.store import FiringStore, RuleStore, TemplateStore
from ..feature import Feature

if TYPE_CHECKING:
    from ..settings import ApiSettings

RULES_BATCH = 100


def services(settings: ApiSettings, state: Any) -> tuple[AutomationService, RuleEngine]:
    """The automation service (handlers) and the rule engine, over the app's NATS connection."""
    js = state["nc"].jetstream()
    templates, rules, firings = TemplateStore(js), RuleStore(js), FiringStore(js)
    service = AutomationService(settings, templates, rules, firings, state["assets"])
    engine = RuleEngine(settings, js, rules, templates, firings, state["jobs"].owners)
    return service, engine


@asynccontextmanager
async def lifespan(settings: ApiSettings, state: Any) -> AsyncIterator[None]:
    service, engine = services(settings, state)
    state["automation"] = service
    consumer = BatchConsumer(engine.js, s.ASSETS_STREAM, s.RULES_DURABLE, engine.handle, batch=RULES_BATCH)
    consumer.start()
    try:
        yield
    finally:
        await consumer.stop()


def provide_automation(request: Request) -> AutomationService:
    return request.app.state.automation


FEATURE = Feature(
    "automation",
    routes=[TemplateController, RuleController],
    dependencies={"automation": Provide(provide_automation, sync_to_thread=False)},
    lifespan=lifespan,
    graphql_query=AutomationQuery,
    graphql_mutation=AutomationMutation,
)
