"""The API as the CLI calls it: a bearer token, one-line errors, and the live event stream."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator

import httpx
from rich.console import Console

from .sse import messages

OPENED = "stream.opened"  # not an event of the API: the CLI's mark that its stream is open


class ApiClient:
    def __init__(
        self,
        api_url: str,
        token: str | None,
        console: Console,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self.http = httpx.Client(
            base_url=api_url.rstrip("/"), headers=headers, timeout=120, transport=transport
        )
        self.out = console

    def call(self, method: str, path: str, **kw) -> dict:
        try:
            r = self.http.request(method, path, **kw)
            if r.status_code == 204:
                return {}
        except httpx.HTTPError as exc:
            raise SystemExit(f"mpr: cannot reach the API at {self.http.base_url}: {exc}") from None
        if r.status_code >= 400:
            try:
                detail = r.json().get("detail", r.text)
            except ValueError:
                detail = r.text
            raise SystemExit(f"mpr: {method} {path} → {r.status_code}: {detail}")
        return r.json()

    def show(self, data: object) -> int:
        self.out.print_json(json.dumps(data))
        return 0

    def sse(self, params: dict, after: str | None = None) -> Iterator[tuple[str | None, str, dict]]:
        """(event id, event type, data) from GET /api/events; reconnects with Last-Event-ID, losing
        nothing. Once the stream is open (and after every reconnection) it yields ``(None, OPENED, {})``:
        from then on no event is missed, so what was read before it can be checked against the API."""
        last: str | None = after
        while True:
            headers = {"Last-Event-ID": last} if last else {}
            try:
                with self.http.stream(
                    "GET", "/api/events", params=params, headers=headers, timeout=None
                ) as r:
                    if r.status_code >= 400:
                        raise SystemExit(f"mpr: GET /api/events → {r.status_code}: {r.read().decode()}")
                    yield None, OPENED, {}
                    for event_id, kind, event in messages(r.iter_lines()):
                        last = event_id or last
                        yield event_id, kind, event
            except httpx.HTTPError:
                time.sleep(1)  # the API restarted: resume after the last event seen
