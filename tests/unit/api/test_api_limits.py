"""What one request may ask of the API, in process over a fake NATS: body and GraphQL limits (a
request is refused before it costs anything), bad bodies as 4xx with a reason, nothing accepted
larger than a NATS message, and a 503 on submit that names the job id to retry with."""

from __future__ import annotations

import time
from typing import Any

import msgspec
import pytest
from graphql import get_introspection_query

from mpr_api.http import limits as L
from mpr_api.jobs.service import queued_view
from mpr_common import subjects as s
from mpr_common.codec import decode
from mpr_common.events import JobCompleted, JobRequested
from tests.unit.api.inprocess import in_process_api

TOKEN = "t0ken"
GRAPHQL_RESPONSE = "application/graphql-response+json"


@pytest.fixture
def api():
    with in_process_api(TOKEN) as (client, nc, app):
        yield client, nc


def gql(client, query: str, variables: dict | None = None, accept: str = GRAPHQL_RESPONSE):
    return client.post("/graphql", json={"query": query, "variables": variables}, headers={"Accept": accept})


def aliases(n: int, field_: str = "jobs(limit: 1000)") -> str:
    return "{ " + " ".join(f"a{i}: {field_} {{ id }}" for i in range(n)) + " }"


# --- 1. GraphQL ------------------------------------------------------------------------------------


def test_a_9_mb_graphql_query_is_a_413_before_anything_is_parsed(api):
    client, nc = api
    query = "{ " + "jobs { id } " * 800_000 + "}"
    started = time.monotonic()
    r = client.post("/graphql", json={"query": query})
    assert r.status_code == 413 and str(L.MAX_BODY_BYTES) in r.json()["detail"]
    assert time.monotonic() - started < 2 and nc.requests == []


def test_a_query_over_the_byte_limit_is_a_413_before_parsing(api):
    client, nc = api
    query = "{ jobs { id } }\n#" + "x" * L.GRAPHQL_MAX_QUERY_BYTES
    r = client.post("/graphql", json={"query": query})
    assert r.status_code == 413 and str(L.GRAPHQL_MAX_QUERY_BYTES) in r.json()["detail"]
    r = client.get("/graphql", params={"query": query})
    assert r.status_code == 413 and "query" in r.json()["detail"]
    assert nc.requests == []


def test_too_many_tokens_stop_the_parser(api):
    client, nc = api
    query = "{ jobs { " + "id " * L.GRAPHQL_MAX_TOKENS + "} }"
    assert len(query) < L.GRAPHQL_MAX_QUERY_BYTES
    r = gql(client, query)
    assert r.status_code == 400 and r.headers["content-type"].startswith(GRAPHQL_RESPONSE)
    body = r.json()
    assert "data" not in body and "tokens" in body["errors"][0]["message"]
    # application/json (the default): 200 for a refused document, as the GraphQL-over-HTTP spec asks
    r = gql(client, query, accept="application/json")
    assert r.status_code == 200 and r.json()["data"] is None and "tokens" in r.json()["errors"][0]["message"]
    assert nc.requests == []


def test_a_query_deeper_than_the_limit_is_refused(api):
    client, nc = api
    deep = "{ assets { info { " + "x { " * L.GRAPHQL_MAX_DEPTH + "y" + " }" * L.GRAPHQL_MAX_DEPTH + " } } }"
    r = gql(client, deep)
    assert r.status_code == 400
    assert any("depth" in e["message"] for e in r.json()["errors"])
    assert nc.requests == []


def test_200_aliases_of_a_full_page_are_refused_before_any_catalog_query(api):
    client, nc = api
    started = time.monotonic()
    r = gql(client, aliases(200))  # 2,400 tokens: the parser stops first
    assert r.status_code == 400 and r.json()["errors"][0]["message"]
    # within the token limit, the alias limit
    r = gql(client, aliases(L.GRAPHQL_MAX_ALIASES + 1, "jobs(limit: 1)"))
    assert r.status_code == 400 and "aliases" in r.json()["errors"][0]["message"]
    assert time.monotonic() - started < 2 and nc.requests == []


def test_the_items_one_operation_asks_for_are_capped_in_total(api):
    client, nc = api
    per_field = L.GRAPHQL_MAX_ITEMS // 2 + 1
    r = gql(client, f"{{ a: jobs(limit: {per_field}) {{ id }} b: assets(limit: {per_field}) {{ id }} }}")
    assert r.status_code == 400
    [error] = r.json()["errors"]
    assert str(L.GRAPHQL_MAX_ITEMS) in error["message"] and error["extensions"]["code"] == "QUERY_TOO_LARGE"
    # the same through variables, and through a fragment
    q = "query($n: Int!) { a: jobs(limit: $n) { id } ...F } fragment F on Query { b: assets(limit: $n) { id } }"
    assert gql(client, q, {"n": per_field}).status_code == 400
    assert nc.requests == []
    r = gql(client, q, {"n": L.GRAPHQL_MAX_ITEMS // 2})
    assert r.status_code == 200 and r.json()["data"] == {"a": [], "b": []}
    assert gql(client, "{ jobs { id } assets { id } }").status_code == 200  # the defaults: 100 each
    r = gql(client, f"{{ jobs(limit: {L.MAX_PAGE + 1}) {{ id }} }}")
    assert r.json()["errors"][0]["extensions"]["code"] == "BAD_REQUEST"


def test_ordinary_queries_and_graphiql_introspection_still_pass(api):
    client, _ = api
    intro = get_introspection_query(
        descriptions=True,
        specified_by_url=True,
        directive_is_repeatable=True,
        schema_description=True,
        input_value_deprecation=True,
    )
    r = gql(client, intro)
    assert r.status_code == 200 and r.json()["data"]["__schema"]["queryType"]["name"] == "Query"
    r = gql(client, aliases(L.GRAPHQL_MAX_ALIASES, "assets(limit: 10)"))
    assert r.status_code == 200 and "errors" not in r.json()
    r = gql(client, "{ assets(limit: 1000) { id info { width height } } }", accept="application/json")
    assert r.status_code == 200 and r.json()["data"] == {"assets": []}


def test_graphql_arguments_are_bounded_as_in_rest(api):
    client, nc = api
    for q in (
        f'{{ job(id: "{"j" * (L.MAX_ID_CHARS + 1)}") {{ id }} }}',
        '{ job(id: "no spaces") { id } }',
        f'{{ assets(prefix: "{"p" * (L.MAX_KEY_CHARS + 1)}") {{ id }} }}',
        '{ jobs(status: "whatever") { id } }',
        f'mutation {{ cancelJob(id: "{"j" * (L.MAX_ID_CHARS + 1)}") {{ id }} }}',
    ):
        r = gql(client, q, accept="application/json")
        assert r.json()["errors"][0]["extensions"]["code"] == "BAD_REQUEST", q
    assert nc.requests == []


# --- 2. bad bodies -------------------------------------------------------------------------------

BODY_PATHS = ["/api/jobs", "/api/assets/scan", "/api/scans", "/api/jobs/j1/callback", "/graphql"]
DEEP = b"[" * 5000 + b"]" * 5000


@pytest.mark.parametrize("path", BODY_PATHS)
@pytest.mark.parametrize(
    "body",
    [
        DEEP,
        b'{"kind": "audio", "source_key": "a.mp4", "query": "{ jobs { id } }", "x": ' + DEEP + b"}",
        b'{"query": "{ jobs { id } }", "variables": {"v": ' + DEEP + b"}}",
    ],
    ids=["array", "in-object", "in-variables"],
)
def test_json_nested_too_deeply_is_a_400(api, path, body):
    client, _ = api
    r = client.post(path, content=body, headers={"Content-Type": "application/json"})
    assert r.status_code == 400 and "nested" in r.json()["detail"]


@pytest.mark.parametrize("path", BODY_PATHS)
@pytest.mark.parametrize(
    "body",
    [
        b'{"kind": "audio", "source_key": "\xff\xfe.mp4", "query": "{ jobs { id } }"}',
        b'{"prefix": "a\xc3", "query": "{ jobs(status: \\"\xe9\\") { id } }"}',
    ],
)
def test_a_body_that_is_not_utf8_is_a_400(api, path, body):
    client, _ = api
    r = client.post(path, content=body, headers={"Content-Type": "application/json"})
    assert r.status_code == 400 and "UTF-8" in r.json()["detail"]


def test_a_body_over_the_limit_is_a_413(api):
    client, nc = api
    body = b'{"kind": "audio", "source_key": "a.mp4", "preset": "' + b"x" * L.MAX_BODY_BYTES + b'"}'
    r = client.post("/api/jobs", content=body, headers={"Content-Type": "application/json"})
    assert r.status_code == 413 and str(L.MAX_BODY_BYTES) in r.json()["detail"]
    # without a Content-Length (chunked): counted as it arrives
    chunks = iter([body[i : i + 65536] for i in range(0, len(body), 65536)])
    r = client.post("/api/jobs", content=chunks, headers={"Content-Type": "application/json"})
    assert r.status_code == 413
    assert nc.js.published == []


CALLBACK: dict[str, dict[str, str]] = {}  # job id -> the headers its callbacks carry


@pytest.fixture
def job(api):
    client, nc = api
    r = client.post(
        "/api/jobs", json={"kind": "audio", "source_key": "a.mp4", "job_id": "j1", "executor": "lambda"}
    )
    nc.jobs["j1"] = queued_view(decode(nc.js.published[0][1], JobRequested))
    CALLBACK["j1"] = {"Authorization": f"Bearer {r.json()['callback_token']}"}
    return "j1"


def test_a_callback_over_nats_max_payload_is_refused_not_a_500(api, job):
    client, nc = api
    big = "k" * (L.NATS_MAX_PAYLOAD + 1)
    for body in (
        {"status": "completed", "output_key": "o.mp4", "worker": big},
        {"status": "progress", "worker": big},
        {
            "status": "completed",
            "output_key": "o.mp4",
            "output_keys": [f"seg/{i:07}.ts" for i in range(90_000)],
        },
    ):
        r = client.post(f"/api/jobs/{job}/callback", headers=CALLBACK[job], json=body)
        assert r.status_code in (400, 413) and r.json()["detail"], r.text
    assert len(nc.js.published) == 1  # only the job itself


def test_every_callback_field_is_bounded(api, job):
    client, nc = api
    ok = {"status": "completed", "output_key": "o.mp4"}
    for extra, what in (
        ({"worker": "w" * (L.MAX_WORKER_CHARS + 1)}, "worker"),
        ({"output_bucket": "b" * (L.MAX_BUCKET_CHARS + 1)}, "output_bucket"),
        ({"output_bucket": "Not_A_Bucket"}, "output_bucket"),
        ({"output_key": "k" * (L.MAX_KEY_CHARS + 1)}, "output_key"),
        ({"output_keys": ["k.ts"] * (L.MAX_OUTPUT_KEYS + 1)}, "output_keys"),
        ({"output_keys": ["k" * (L.MAX_KEY_CHARS + 1)]}, "output_keys"),
        ({"output_keys": ["../etc/passwd"]}, "output_keys"),
        ({"error": "e" * (L.MAX_ERROR_CHARS + 1)}, "error"),
        ({"output_size": -1}, "output_size"),
        ({"elapsed": -1}, "elapsed"),
    ):
        r = client.post(f"/api/jobs/{job}/callback", headers=CALLBACK[job], json={**ok, **extra})
        assert r.status_code == 400 and what in r.json()["detail"], (extra, r.text[:300])
    assert len(nc.js.published) == 1


def test_the_largest_callback_accepted_fits_in_one_nats_message(api, job):
    """Every string at its bound, in characters JSON escapes (a '"' is two bytes), and as many
    output keys of 1024 bytes as the body limit lets through: the event stays under NATS's limit."""
    client, nc = api
    key = "a/" + '"' * (L.MAX_KEY_CHARS - 2)
    nc.jobs[job] = msgspec.structs.replace(nc.jobs[job], output_key=key)  # a callback reports its own output
    body: dict[str, Any] = {
        "status": "completed",
        "output_key": key,
        "worker": "\x01" * L.MAX_WORKER_CHARS,
        "output_keys": [],
    }
    # As many keys as fit: n keys take n encoded keys and n - 1 commas beside the rest of the body.
    rest = len(msgspec.json.encode(body))
    n = (L.MAX_BODY_BYTES - rest + 1) // (len(msgspec.json.encode(key)) + 1)
    body["output_keys"] = [key] * n
    assert len(msgspec.json.encode(body)) <= L.MAX_BODY_BYTES
    assert len(msgspec.json.encode({**body, "output_keys": [key] * (n + 1)})) > L.MAX_BODY_BYTES
    r = client.post(f"/api/jobs/{job}/callback", headers=CALLBACK[job], content=msgspec.json.encode(body))
    assert r.status_code == 200, r.text
    subject, payload, _ = nc.js.published[-1]
    assert subject == s.JOB_COMPLETED and len(decode(payload, JobCompleted).output_keys) > 100
    assert len(payload) < L.NATS_MAX_PAYLOAD
    failed = {"status": "failed", "error": "\x01" * L.MAX_ERROR_CHARS, "worker": "\x01" * L.MAX_WORKER_CHARS}
    assert client.post(f"/api/jobs/{job}/callback", headers=CALLBACK[job], json=failed).status_code == 200


# --- 3. a 503 names the job to retry with -------------------------------------------------------


def test_an_unconfirmed_job_answers_its_id_and_a_retry_with_it_is_the_same_job(api):
    client, nc = api
    nc.js.lose_acks = True  # stored from the client's buffer, but never acknowledged
    r = client.post("/api/jobs", json={"kind": "audio", "source_key": "a.mp4"})
    assert r.status_code == 503
    body = r.json()
    job_id = body["job_id"]
    assert "job queue" in body["detail"] and job_id in body["detail"] and "job_id" in body["detail"]
    assert {h["Nats-Msg-Id"] for _, _, h in nc.js.published} == {job_id}
    # the catalog ingests it from the stream, as it would
    nc.jobs[job_id] = queued_view(decode(nc.js.published[0][1], JobRequested))
    nc.js.lose_acks = False
    again = client.post("/api/jobs", json={"kind": "audio", "source_key": "a.mp4", "job_id": job_id})
    assert again.status_code == 200 and again.json()["job"]["id"] == job_id
    assert len(nc.js.published) == 1  # stored once


def test_graphql_names_the_job_id_of_an_unconfirmed_job(api):
    client, nc = api
    nc.js.lose_acks = True
    r = gql(
        client,
        'mutation { submitJob(job: {kind: audio, sourceKey: "a.mp4"}) { id } }',
        accept="application/json",
    )
    [error] = r.json()["errors"]
    assert error["extensions"]["code"] == "UNAVAILABLE"
    assert error["extensions"]["jobId"] == nc.js.published[0][2]["Nats-Msg-Id"]


def test_openapi_documents_the_503_and_its_job_id(api):
    client, _ = api
    post = client.get("/schema/openapi.json").json()["paths"]["/api/jobs"]["post"]
    assert "job_id" in post["description"] and "503" in post["description"]
    unavailable = post["responses"]["503"]
    ref = unavailable["content"]["application/json"]["schema"]["$ref"].rsplit("/", 1)[-1]
    schema = client.get("/schema/openapi.json").json()["components"]["schemas"][ref]
    assert "job_id" in schema["properties"]
