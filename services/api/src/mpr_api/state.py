"""What the handlers are given: the app's NATS connection and the services each domain made in its
lifespan, kept by their type (``state.get(JobService)``), so that every read is typed and no module
below ``app.py`` needs to know every service there is.

It lives on Litestar's ``app.state`` under one key; :func:`state_of` reads it back."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TypeVar

from litestar import Litestar
from nats.aio.client import Client

T = TypeVar("T")

STATE_KEY = "mpr"  # the one key of Litestar's app.state the API uses


@dataclass
class ApiState:
    nc: Client | None = None
    services: dict[type, object] = field(default_factory=dict)

    @classmethod
    def of(cls, named: Mapping[str, object]) -> ApiState:
        """From services by name, as in-process tests hold them (``"nc"`` is the connection)."""
        state = cls()
        for name, value in named.items():
            if name == "nc":
                state.nc = value  # type: ignore[assignment]  # a test's fake connection
            else:
                state.provide(value)
        return state

    def provide(self, *services: object) -> None:
        for service in services:
            self.services[type(service)] = service

    def get(self, kind: type[T]) -> T:
        """The service of that type (or a subclass of it: a test's fake)."""
        found = self.services.get(kind)
        if found is None:
            found = next((s for s in self.services.values() if isinstance(s, kind)), None)
            if found is None:
                raise LookupError(f"no {kind.__name__} in the API's state (its feature did not start)")
        return found  # type: ignore[return-value]  # kept under its own type

    def bus(self) -> Client:
        """The NATS connection (a feature's lifespan runs once it is made)."""
        if self.nc is None:
            raise LookupError("the API's state has no NATS connection")
        return self.nc


def state_of(app: Litestar) -> ApiState:
    state = app.state[STATE_KEY]
    assert isinstance(state, ApiState)
    return state
