"""What a resolver is given: the services of the app its request (or WebSocket) came to."""

from __future__ import annotations

from typing import TypeVar

from strawberry.types import Info

from ..state import state_of

T = TypeVar("T")


def service(info: Info, kind: type[T]) -> T:
    """The service of that type (``state.get``), for a resolver."""
    return state_of(info.context["request"].app).get(kind)
