"""Reading ``GET /api/events``: the messages of a ``text/event-stream`` body, line by line."""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator


def messages(lines: Iterable[str]) -> Iterator[tuple[str | None, str, dict]]:
    """(id, event type, data) of each message: the id of the newest ``id:`` line so far (None before
    any), the type (``message`` when the message names none), the JSON of its ``data:`` lines."""
    last_id: str | None = None
    kind, data = "message", ""
    for line in lines:
        if line.startswith("id:"):
            last_id = line[3:].strip()
        elif line.startswith("event:"):
            kind = line[6:].strip()
        elif line.startswith("data:"):
            data += line[5:].strip()
        elif not line and data:
            yield last_id, kind, json.loads(data)
            kind, data = "message", ""
