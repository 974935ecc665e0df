"""What each domain of the API contributes (``jobs/``, ``assets/``, … each export ``FEATURE``): its routes
and dependencies, GraphQL fields, and what it makes once in the lifespan (services put in the app's
:class:`~mpr_api.state.ApiState`, background tasks such as a webhook dispatcher). ``features.py`` lists
them; ``app.py`` mounts that list."""

from __future__ import annotations

from collections.abc import Callable, MutableMapping
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass, field
from typing import Any, TypeVar

from litestar import Request
from litestar.di import Provide
from litestar.types import ControllerRouterHandler

from .state import ApiState, state_of

T = TypeVar("T")

# lifespan(settings, state): runs inside the app's lifespan once NATS is connected and the features
# before it in the list have started; adds its own services to ``state`` and may run tasks until it
# exits. ``settings`` is the whole ApiSettings, which is each domain's own settings type too. In-process
# tests give the app its state instead, and no feature lifespan runs.
FeatureLifespan = Callable[[Any, ApiState], AbstractAsyncContextManager[None]]


@dataclass(frozen=True)
class Feature:
    name: str
    routes: list[ControllerRouterHandler] = field(default_factory=list)
    dependencies: dict[str, Provide] = field(default_factory=dict)
    lifespan: FeatureLifespan | None = None
    graphql_query: type | None = None  # strawberry types merged into the schema's Query …
    graphql_mutation: type | None = None  # … Mutation
    graphql_subscription: type | None = None  # … and Subscription


def provide(kind: type[T]) -> Provide:
    """A route dependency: the service of that type from the app's state."""

    def dependency(request: Request[Any, Any, Any]) -> T:
        return state_of(request.app).get(kind)

    return Provide(dependency, sync_to_thread=False)


def on_mapping(
    lifespan: FeatureLifespan,
) -> Callable[[Any, MutableMapping[str, object]], AbstractAsyncContextManager[None]]:
    """``lifespan`` run over services by name (``{"nc": …}``), as ``create_app(state=…)`` takes them
    from in-process tests: what it provides is added to the mapping, under its type's name."""

    @asynccontextmanager
    async def run(settings: Any, named: MutableMapping[str, object]) -> Any:
        state = ApiState.of(named)
        async with lifespan(settings, state):
            named.update({kind.__name__: service for kind, service in state.services.items()})
            yield

    return run
