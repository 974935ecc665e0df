"""Hostile bodies against the real API (uvicorn, NATS, the catalog): each is refused with a 4xx and a
reason, cheaply, and the API keeps answering everybody else meanwhile."""

from __future__ import annotations

import threading
import time

import httpx
import pytest

from mpr_api.http import limits as L
from mpr_devstack.stack import DEV_API_TOKEN

pytestmark = pytest.mark.system

JSON = {"Content-Type": "application/json"}
GRAPHQL_RESPONSE = "application/graphql-response+json"
DEEP = b"[" * 1500 + b"]" * 1500
NOT_UTF8 = b'{"kind": "audio", "source_key": "\xff\xfe.mp4", "query": "{ jobs { id } }"}'
BODY_PATHS = ("/api/jobs", "/api/assets/scan", "/api/jobs/nosuchjob/callback", "/graphql")
NINE_MB_QUERY = "{ " + "jobs { id } " * 750_000 + "}"
ALIASES_200 = "{ " + " ".join(f"a{i}: jobs(limit: 1000) {{ id }}" for i in range(200)) + " }"


def test_deep_json_and_invalid_utf8_are_a_400_everywhere(api):
    for path in BODY_PATHS:
        r = api.post(path, content=DEEP, headers=JSON)
        assert r.status_code == 400 and "nested" in r.json()["detail"], (path, r.text[:200])
        r = api.post(path, content=NOT_UTF8, headers=JSON)
        assert r.status_code == 400 and "UTF-8" in r.json()["detail"], (path, r.text[:200])


def test_an_oversized_body_is_a_413(api):
    body = b'{"kind": "audio", "source_key": "a.mp4", "preset": "' + b"x" * L.MAX_BODY_BYTES + b'"}'
    r = api.post("/api/jobs", content=body, headers=JSON)
    assert r.status_code == 413 and str(L.MAX_BODY_BYTES) in r.json()["detail"]
    r = api.post("/api/jobs/nosuchjob/callback", json={"status": "progress", "worker": "w" * (2 << 20)})
    assert r.status_code == 413 and r.json()["detail"]


def test_a_9_mb_graphql_query_is_a_413(api):
    started = time.monotonic()
    r = api.post("/graphql", json={"query": NINE_MB_QUERY})
    assert r.status_code == 413 and str(L.MAX_BODY_BYTES) in r.json()["detail"]
    assert time.monotonic() - started < 5


def test_200_aliases_of_a_full_page_are_refused(api):
    r = api.post("/graphql", json={"query": ALIASES_200}, headers={"Accept": GRAPHQL_RESPONSE})
    assert r.status_code == 400 and r.headers["content-type"].startswith(GRAPHQL_RESPONSE)
    assert "data" not in r.json() and r.json()["errors"][0]["message"]
    # application/json: the same refusal with a 200, as the GraphQL-over-HTTP spec asks
    r = api.post("/graphql", json={"query": ALIASES_200})
    assert r.status_code == 200 and r.json()["data"] is None and r.json()["errors"][0]["message"]
    # within the token limit, the total of list items is capped
    q = "{ a: jobs(limit: 1000) { id } b: jobs(limit: 1000) { id } }"
    r = api.post("/graphql", json={"query": q}, headers={"Accept": GRAPHQL_RESPONSE})
    assert r.status_code == 400 and "items" in r.json()["errors"][0]["message"]


def _hostile(stack, stop: threading.Event, errors: list[BaseException], rounds: list[float]) -> None:
    """Send every hostile body over and over until told to stop; ``rounds``: when each round ended."""
    headers = {"Authorization": f"Bearer {DEV_API_TOKEN}"}
    try:
        with httpx.Client(base_url=stack.api_url, headers=headers, timeout=120) as c:
            while not stop.is_set():
                c.post("/graphql", json={"query": NINE_MB_QUERY})
                c.post("/graphql", json={"query": ALIASES_200})
                for path in BODY_PATHS:
                    c.post(path, content=DEEP, headers=JSON)
                    c.post(path, content=NOT_UTF8, headers=JSON)
                c.post("/api/jobs", content=b'{"x": "' + b"x" * (2 * L.MAX_BODY_BYTES) + b'"}', headers=JSON)
                rounds.append(time.monotonic())
    except BaseException as exc:  # reported by the test
        errors.append(exc)


def test_a_normal_request_answers_fast_meanwhile(stack, api):
    stop = threading.Event()
    errors: list[BaseException] = []
    rounds: list[float] = []
    attackers = [threading.Thread(target=_hostile, args=(stack, stop, errors, rounds)) for _ in range(2)]
    for t in attackers:
        t.start()
    slowest = 0.0
    try:
        # Seconds of attack, each attacker sending every hostile body again and again: a body that held
        # the event loop would hold it in every one of its rounds, and slow the first normal request after.
        deadline = time.monotonic() + 4
        while time.monotonic() < deadline:
            for call in (
                lambda: api.get("/api/jobs", params={"limit": 5}),
                lambda: api.post("/graphql", json={"query": "{ jobs(limit: 5) { id status } }"}),
            ):
                started = time.monotonic()
                r = call()
                slowest = max(slowest, time.monotonic() - started)
                assert r.status_code == 200 and "errors" not in r.json(), r.text[:300]
            time.sleep(0.05)
    finally:
        stop.set()
        for t in attackers:
            t.join(timeout=120)
    during = sum(ended < deadline for ended in rounds)
    print(f"slowest normal request while under attack ({during} hostile rounds): {slowest:.3f}s")
    assert not errors, errors
    assert during >= 2, f"only {during} rounds of hostile bodies ended while normal requests were timed"
    assert slowest < 2, f"a normal request took {slowest:.2f}s while hostile ones were sent"
