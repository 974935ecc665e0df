"""GraphQL's transports in process: any JSON body that is not an object is a 400 with a message, and over
WebSocket (graphql-transport-ws) a query or mutation runs as over HTTP, with the same limits and the same
bearer token, and a malformed subscribe message gets an error for its id (never the internal text a
resolver raised: unexpected errors are masked as over HTTP)."""

from __future__ import annotations

import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from litestar.exceptions import WebSocketDisconnect
from litestar.testing import TestClient

from mpr_api.app import services
from mpr_api.graphql.limits import SUBSCRIPTIONS_OVER_WEBSOCKET
from mpr_api.graphql.schema import INTERNAL_ERROR
from mpr_api.graphql.transport import NOT_AN_OBJECT
from mpr_api.http import limits as L
from mpr_api.settings import ApiSettings
from tests.fakes import FakeKV, FakeNats
from tests.unit.api.inprocess import serving

TOKEN = "t0ken"
WS = ["graphql-transport-ws"]


@pytest.fixture(scope="module")
def client():
    settings = ApiSettings(tokens=frozenset({TOKEN}), auth_failures_per_minute=0)
    state = services(settings, FakeNats(), FakeKV(), public_s3=None, owners_kv=FakeKV())
    with serving(settings, state) as app, TestClient(app, base_url="http://mpr.local") as c:
        c.headers["Authorization"] = f"Bearer {TOKEN}"
        yield c


@pytest.mark.parametrize("body", [b"null", b'"x"', b"1", b"true", b"  \n 3.5"])
def test_a_body_that_is_not_an_object_is_a_400(client, body):
    r = client.post("/graphql", content=body, headers={"Content-Type": "application/json"})
    assert r.status_code == 400 and r.json()["detail"] == NOT_AN_OBJECT


@pytest.mark.parametrize(
    ("body", "word"),
    [
        ([], "Batching"),
        ({"query": 1}, "query"),
        ({"query": "{ jobs { id } }", "variables": "x"}, "variables"),
        ({"query": "{ jobs { id } }", "extensions": [1]}, "extensions"),
        ({"query": "{ jobs { id } }", "operationName": 7}, "operation"),
        ({"query": "{ jobs { id } }", "operationName": {"a": 1}}, "operation"),
    ],
)
def test_wrong_types_of_the_fields_are_a_400(client, body, word):
    r = client.post("/graphql", json=body)
    assert r.status_code == 400 and word in r.json()["detail"], r.text


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
    max_leaves=12,
)
FIELDS = st.fixed_dictionaries(
    {},
    optional={
        "query": JSON | st.sampled_from(["{ jobs { id } }", "query Q { jobs { id } }", "mutation { x }"]),
        "variables": JSON,
        "operationName": JSON,
        "extensions": JSON,
    },
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(body=st.one_of(JSON, FIELDS))
def test_any_json_body_is_answered_without_a_5xx(client, body):
    r = client.post("/graphql", content=json.dumps(body), headers={"Content-Type": "application/json"})
    assert r.status_code < 500, r.text


def subscribe(ws, op_id, payload):
    ws.send_json({"type": "subscribe", "id": op_id, "payload": payload})


def messages_for(ws, op_id):
    """Messages until this operation's complete or error."""
    out = []
    while True:
        msg = ws.receive_json()
        if msg.get("id") != op_id:
            continue
        out.append(msg)
        if msg["type"] in ("complete", "error"):
            return out


@pytest.fixture
def ws(client):
    with client.websocket_connect("/graphql", subprotocols=WS) as socket:
        socket.send_json({"type": "connection_init"})
        assert socket.receive_json()["type"] == "connection_ack"
        yield socket


def test_a_query_over_websocket_runs_as_over_http(ws):
    subscribe(ws, "1", {"query": "{ jobs { id } }"})
    [first, done] = messages_for(ws, "1")
    assert first["type"] == "next" and first["payload"] == {"data": {"jobs": []}}
    assert done["type"] == "complete"


def test_a_resolver_s_internal_error_is_masked_over_websocket(ws):
    # the fake NATS has no subscribe(): the scan mutation fails inside; its text must not be shown
    subscribe(ws, "m", {"query": "mutation { scanMediaFolder { found } }"})
    first = messages_for(ws, "m")[0]
    [error] = first["payload"]["errors"]
    assert error["message"] == INTERNAL_ERROR
    assert "request" not in json.dumps(first) and "FakeNats" not in json.dumps(first)


def test_the_http_limits_hold_over_websocket(ws):
    subscribe(ws, "big", {"query": "{ jobs { id } }#" + "x" * L.GRAPHQL_MAX_QUERY_BYTES})
    [err] = messages_for(ws, "big")
    assert err["type"] == "error" and str(L.GRAPHQL_MAX_QUERY_BYTES) in err["payload"][0]["message"]
    aliases = (
        "{ " + " ".join(f"a{i}: jobs(limit: 1) {{ id }}" for i in range(L.GRAPHQL_MAX_ALIASES + 1)) + " }"
    )
    subscribe(ws, "aliases", {"query": aliases})
    assert "aliases" in json.dumps(messages_for(ws, "aliases")[0])
    subscribe(ws, "items", {"query": "{ a: jobs(limit: 1000) { id } b: jobs(limit: 1000) { id } }"})
    assert "items" in json.dumps(messages_for(ws, "items")[0])


def test_a_document_over_the_token_limit_closes_the_socket_with_the_reason(ws):
    # a syntax error before execution closes the connection (4400), as graphql-transport-ws says
    subscribe(ws, "tokens", {"query": "{ jobs { " + "id " * L.GRAPHQL_MAX_TOKENS + "} }"})
    with pytest.raises(WebSocketDisconnect) as closed:
        messages_for(ws, "tokens")
    assert closed.value.code == 4400 and "tokens" in str(closed.value.detail)


@pytest.mark.parametrize(
    "payload",
    [
        None,
        "{ jobs { id } }",
        [],
        {},
        {"query": 5},
        {"query": "{ jobs { id } }", "variables": []},
        {"query": "{ jobs { id } }", "operationName": 1},
        {"query": "{ jobs { id } }", "extensions": "x"},
    ],
)
def test_a_malformed_subscribe_payload_gets_an_error_for_its_id(ws, payload):
    subscribe(ws, "bad", payload)
    [err] = messages_for(ws, "bad")
    assert err["type"] == "error" and "subscribe message" in err["payload"][0]["message"]
    subscribe(ws, "good", {"query": "{ jobs { id } }"})  # the connection still works
    assert messages_for(ws, "good")[0]["type"] == "next"


def test_the_handshake_needs_the_bearer_token(client):
    del client.headers["Authorization"]
    try:
        with pytest.raises(WebSocketDisconnect) as refused:
            with client.websocket_connect("/graphql", subprotocols=WS):
                pass
        assert refused.value.code == 1008
    finally:
        client.headers["Authorization"] = f"Bearer {TOKEN}"


@pytest.mark.parametrize(
    "accept", ["application/json", "multipart/mixed;subscriptionSpec=1.0", "text/event-stream"]
)
def test_a_subscription_over_http_is_refused_with_a_message(client, accept):
    r = client.post(
        "/graphql", json={"query": "subscription { jobEvents { type } }"}, headers={"Accept": accept}
    )
    assert r.status_code < 500
    [error] = r.json()["errors"]
    assert error["message"] == SUBSCRIPTIONS_OVER_WEBSOCKET


FRAMES = st.one_of(
    JSON.map(json.dumps),
    st.text(max_size=40),
    st.fixed_dictionaries(
        {"type": st.sampled_from(["subscribe", "ping", "pong", "complete", "connection_init"])},
        optional={"id": JSON, "payload": st.one_of(JSON, FIELDS)},
    ).map(json.dumps),
)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(frames=st.lists(FRAMES, min_size=1, max_size=3))
def test_no_frame_gets_an_internal_error(client, frames):
    """After the handshake, any frames: answers or a close with 4400-4499, never 4500 or 1011 (a
    server error) and never the masked text of a bug."""
    try:
        with client.websocket_connect("/graphql", subprotocols=WS) as socket:
            socket.send_json({"type": "connection_init"})
            assert socket.receive_json()["type"] == "connection_ack"
            for frame in frames:
                socket.send_text(frame)
            socket.send_json({"type": "ping"})  # answered once every frame before it was handled
            while True:
                msg = socket.receive_json()
                assert INTERNAL_ERROR not in json.dumps(msg), msg
                if msg.get("type") == "pong":
                    break
    except WebSocketDisconnect as exc:
        assert 4400 <= exc.code < 4500 or exc.code == 1000, (exc.code, exc.detail)
