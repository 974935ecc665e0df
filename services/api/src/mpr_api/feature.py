"""What an API feature module contributes (events, webhooks, automation, queues, retries, console): its
routes and dependencies, GraphQL fields, and what it makes once in the lifespan (services put in
``app.state``, background tasks such as a webhook dispatcher). ``features/__init__.py`` lists them."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .settings import ApiSettings

# lifespan(settings, state): runs inside the app's lifespan once NATS and S3 are connected (``state`` is
# app.state: state["nc"], state["jobs"], state["assets"], …); adds its own services to it and may run
# tasks until it exits. In-process tests give the app its state instead, and no feature lifespan runs.
FeatureLifespan = Callable[["ApiSettings", Any], AbstractAsyncContextManager[None]]


@dataclass(frozen=True)
class Feature:
    name: str
    routes: list[Any] = field(default_factory=list)
    dependencies: dict[str, Any] = field(default_factory=dict)  # name -> litestar Provide
    lifespan: FeatureLifespan | None = None
    graphql_query: type | None = None  # strawberry types merged into the schema's Query …
    graphql_mutation: type | None = None  # … Mutation
    graphql_subscription: type | None = None  # … and Subscription
