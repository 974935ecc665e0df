"""GraphQL inputs of a job's watermark and preview options (jobs and templates take them): each the
JSON form of its ``mpr_common.events`` struct, unset fields left out, checked like the REST body."""

from __future__ import annotations

import dataclasses
from typing import Any

import strawberry


def unset_dropped(value: Any) -> Any:
    """An input as plain data, the fields left unset (None) dropped at every level."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        value = dataclasses.asdict(value)
    if isinstance(value, dict):
        return {k: unset_dropped(v) for k, v in value.items() if v is not None}
    return value


@strawberry.input(
    description="An image (key: a PNG or JPEG in the source bucket) or a text drawn over the picture"
)
class WatermarkInput:
    key: str | None = None
    text: str | None = None
    position: str | None = strawberry.field(
        default=None, description="top-left, top-right (default), bottom-left, bottom-right or center"
    )
    margin: int | None = strawberry.field(default=None, description="pixels from the edges (default 16)")
    opacity: float | None = strawberry.field(default=None, description="0 to 1 (default 0.8)")
    width: float | None = strawberry.field(
        default=None, description="an image's width, a share of the output's width (default 0.15)"
    )
    size: float | None = strawberry.field(
        default=None, description="a text's height, a share of the output's height (default 0.05)"
    )


@strawberry.input(description="A preview job's animation (defaults: 6 clips of 1 s, 320 px wide, 10 fps)")
class PreviewInput:
    clips: int | None = None
    clip_seconds: float | None = None
    width: int | None = None
    fps: float | None = None
