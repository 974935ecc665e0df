"""Errors about one field of a request: the REST body (``"field": "source_key"``) and the GraphQL error's
extensions (``"field": "sourceKey"``, as GraphQL spells its fields) name it, so that a client shows the
message next to that field instead of guessing it from the text. The detail is the same as without."""

from __future__ import annotations

from mpr_common.errors import BadRequest, Conflict, MprError


def graphql_name(field: str) -> str:
    """A REST field's name as GraphQL spells it: source_key -> sourceKey."""
    first, *rest = field.split("_")
    return first + "".join(word.capitalize() for word in rest)


class _NamesField(MprError):
    def __init__(self, detail: str, field: str | None = None) -> None:
        super().__init__(detail)
        self.field = field

    @property
    def extra(self) -> dict[str, str]:
        return {"field": self.field} if self.field else {}

    @property
    def graphql_extensions(self) -> dict[str, str]:
        return {"field": graphql_name(self.field)} if self.field else {}


class FieldError(_NamesField, BadRequest):
    """400: the value of ``field`` cannot be used; the detail says why."""


class FieldConflict(_NamesField, Conflict):
    """409: the value of ``field`` is taken (an output key another job owns)."""
