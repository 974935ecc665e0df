"""Property-based: no input to the API gives a 5xx or blocks its event loop.

The API runs as it does in production (``mpr_api`` run as ``__main__``, uvicorn, every feature's lifespan;
forked, as every test stack's services are, by the launcher that imported it once) over a
real nats-server with mpr-setup's streams and buckets, moto's S3 and a stand-in catalog that answers
every query (its asset list: keys with 40 folders, the worst case of a rule's glob). Routes are read from
the Litestar app and GraphQL operations from the schema, so new ones are fuzzed without a change here.
Hypothesis generates arbitrary JSON, wrong types, huge integers (beyond the 4,300 digits ``int()``
converts), long strings, invalid UTF-8, deep nesting, odd path parameters, query strings and headers.
Every answer must be below 500 (and no GraphQL error the masked "internal error" of a bug); the one
exception is a scan with no scanner running, whose 503 or 504 says so. Meanwhile ``/health/live`` must answer
within 100 ms each time: nothing a request sends may hold the event loop."""

from __future__ import annotations

import asyncio
import functools
import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote, urlencode

import httpx
import nats
import pytest
from graphql import (
    GraphQLEnumType,
    GraphQLInputObjectType,
    GraphQLList,
    GraphQLNonNull,
    GraphQLObjectType,
    GraphQLScalarType,
    get_named_type,
)
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from litestar.routes import HTTPRoute

from mpr_api.app import create_app, schema
from mpr_api.automation.globs import MAX_GLOB_DOUBLE_STARS
from mpr_api.graphql.schema import INTERNAL_ERROR
from mpr_api.settings import ApiSettings
from mpr_common import subjects as s
from mpr_common.catalog_requests import REQUEST_TYPES, AssetsPage
from mpr_common.codec import decode, encode
from mpr_common.errors import NotFound, error_headers
from mpr_common.events import AssetView, MediaInfo
from mpr_common.settings import JobQueueSettings, NatsSettings
from mpr_common.streams import setup_jetstream
from mpr_devstack import zygote
from mpr_devstack.servers import NatsServer, free_port
from tests import moto_s3

pytestmark = pytest.mark.system

s3_settings = moto_s3.s3_settings  # the module's S3 server (a fixture)

TOKEN = "fuzz-t0ken"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
LIVE_LIMIT = 0.100  # seconds: /health/live must always answer within this
HUGE = "9" * 5000  # more digits than int() converts (4,300)
DEEP = "[" * 3000 + "]" * 3000
WORST_GLOB = "**/" * MAX_GLOB_DOUBLE_STARS + "*a*a*a*a*b"
LONG_KEY = "/".join(f"d{i}" for i in range(40)) + "/clip.mp4"  # 40 slashes
SCAN_PATHS = ("/api/assets/scan", "/api/scans")  # no scanner runs: 503 (or 504 once it is gone)


# --- the stand-in catalog ---------------------------------------------------------------------------
def _asset(i: int) -> AssetView:
    info = MediaInfo(format_name="mov,mp4", duration=10.0, video_codec="h264", width=640, height=360)
    return AssetView(
        id=f"{i:032x}",
        bucket="t-in",
        key=LONG_KEY.replace("clip", f"clip{i}"),
        etag=f"e{i}",
        size=1000,
        media_type="video",
        probe_status="ok",
        probe_error=None,
        info=info,
        removed=False,
        created_at=0.0,
        updated_at=0.0,
    )


ASSETS = [_asset(i) for i in range(300)]


class Catalog(threading.Thread):
    """Answers the catalog's subjects in its own thread and event loop: asset lists from ASSETS, other
    lists empty, anything by id not found."""

    def __init__(self, url: str) -> None:
        super().__init__(daemon=True)
        self.url = url
        self.ready = threading.Event()
        self.loop = asyncio.new_event_loop()

    def run(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.run_until_complete(self._subscribe())
        self.ready.set()
        self.loop.run_forever()

    async def _subscribe(self) -> None:
        self.nc = await nats.connect(self.url)
        await self.nc.subscribe("mpr.catalog.>", cb=self._answer)

    async def _answer(self, msg: Any) -> None:
        if not msg.reply:
            return
        try:
            q: Any = decode(msg.data, REQUEST_TYPES[msg.subject])
        except Exception:
            return
        if msg.subject == s.CATALOG_ASSETS_LIST:
            found = [a for a in ASSETS if a.key.startswith(q.prefix or "")]
            page = found[q.offset : q.offset + max(0, q.limit)]
            await msg.respond(encode(AssetsPage(assets=page, total=len(found))))
        elif msg.subject.endswith(".list") or msg.subject == s.CATALOG_JOB_REQUESTS:
            await msg.respond(encode(REQUEST_TYPES[msg.subject].reply()))
        else:
            await self.nc.publish(msg.reply, b"", headers=error_headers(NotFound(f"{q.id} not found")))

    def stop(self) -> None:
        async def close() -> None:
            await self.nc.close()

        asyncio.run_coroutine_threadsafe(close(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)


async def _setup(url: str) -> None:
    nc = await nats.connect(url)
    await setup_jetstream(nc.jetstream(), NatsSettings(), JobQueueSettings())
    await nc.close()


@pytest.fixture(scope="module")
def api(tmp_path_factory, s3_settings) -> Iterator[httpx.Client]:
    tmp = tmp_path_factory.mktemp("fuzz")
    bus = NatsServer(tmp / "js", port=free_port(), log_path=tmp / "nats.log").start()
    asyncio.run(_setup(bus.url))
    catalog = Catalog(bus.url)
    catalog.start()
    assert catalog.ready.wait(30)
    port = free_port()
    env = {
        **os.environ,
        "NATS_URL": bus.url,
        "API_HOST": "127.0.0.1",
        "API_PORT": str(port),
        "API_TOKENS": TOKEN,
        "API_REQUEST_TIMEOUT": "5",
        "API_SCAN_TIMEOUT": "0.5",
        "API_AUTH_FAILURES_PER_MINUTE": "0",  # the fuzzer sends wrong tokens on purpose
        "S3_ENDPOINT_URL": s3_settings.endpoint_url,
        "S3_BUCKET_IN": s3_settings.bucket_in,
        "S3_BUCKET_OUT": s3_settings.bucket_out,
        "AWS_ACCESS_KEY_ID": "k",
        "AWS_SECRET_ACCESS_KEY": "s",
        "LOG_FORMAT": "text",
    }
    log_path = tmp / "api.log"
    with log_path.open("wb") as log:
        proc = zygote.spawn("mpr_api", [], env, log, zygote.preload_requested())
    client = httpx.Client(base_url=f"http://127.0.0.1:{port}", headers=AUTH, timeout=60)
    try:
        deadline = time.monotonic() + 90
        while True:
            try:
                if client.get("/health/ready").status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert proc.poll() is None, log_path.read_text()[-3000:]
            assert time.monotonic() < deadline, "the API did not start: " + log_path.read_text()[-3000:]
            time.sleep(0.2)
        put = client.put(
            "/api/templates/fuzz-poster", json={"kind": "thumbnail", "preset": "png-640", "start": 1}
        )
        assert put.status_code in (200, 201), put.text
        yield client
    finally:
        client.close()
        proc.terminate()
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
        catalog.stop()
        bus.stop()
    unhandled = [
        line for line in log_path.read_text(errors="replace").splitlines() if "unhandled error" in line
    ]
    assert not unhandled, "\n".join(unhandled[:20])


# --- what to send -----------------------------------------------------------------------------------
APP = create_app(ApiSettings())
ROUTES: list[tuple[str, str]] = sorted(
    (method, route.path)
    for route in APP.routes
    if isinstance(route, HTTPRoute)
    for method in route.methods
    if method != "OPTIONS"
)


@functools.cache
def _openapi() -> dict[str, Any]:
    # Built when the first example is drawn, not at import: every test process imports this module to
    # collect it, and the schema costs a second or two of CPU; only the process that runs it needs it.
    return APP.openapi_schema.to_schema()


@functools.cache
def _param_names() -> list[str]:
    return sorted(
        {
            p["name"]
            for item in _openapi()["paths"].values()
            for op in item.values()
            if isinstance(op, dict)
            for p in op.get("parameters", [])
            if p.get("in") == "query"
        }
        | {"limit", "offset", "revision", "id", "after", "status", "prefix", "kind", "types", "job_id"}
    )


@functools.cache
def _field_names() -> list[str]:
    return sorted(
        {
            name
            for schema_ in _openapi().get("components", {}).get("schemas", {}).values()
            for name in schema_.get("properties", {})
        }
    )


PARAM_NAMES = st.deferred(lambda: st.sampled_from(_param_names()))
FIELD_NAMES = st.deferred(lambda: st.sampled_from(_field_names()))

HOSTILE_TEXT = st.sampled_from(
    [
        "",
        "x" * 70_000,
        "\x00",
        "..",
        "../../etc/passwd",
        "%ff%fe",
        "t@18446744073709551616",
        f"t@{HUGE}",
        "t@\u00b2",
        "[z-a]",
        "**/" * 12 + "x",
        WORST_GLOB,
        "{a,{b}}",
        "\ud800",
        "é" * 300,
        "1.99999999999999999999.1",
        "null",
    ]
)
HOSTILE_NUMBER = st.sampled_from(
    [-1, 0, 2**31, 2**63, 2**64, 18446744073709551616, 10**300, 1e308, -1e308, 0.5]
)
SCALARS = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=30)
    | HOSTILE_TEXT
    | HOSTILE_NUMBER
)
JSON = st.recursive(
    SCALARS,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=5),
    max_leaves=15,
)
# objects with the API's own field names, so that validation goes deep
FIELDED = st.dictionaries(FIELD_NAMES, JSON, max_size=8)
VALID_BASE = st.sampled_from(
    [
        {"kind": "thumbnail", "source_key": "a.mp4", "start": 1},
        {"template": "t", "prefix": "d0/"},
        {"kind": "transcode"},
        {"url": "https://example.com/hook", "events": ["job.completed"]},
        {"status": "progress", "progress": 0.5},
        {"key": "a.mp4", "size": 10},
    ]
)
MUTATED = st.builds(lambda base, extra: {**base, **extra}, VALID_BASE, FIELDED)
RAW_BODIES = st.sampled_from(
    [
        b"",
        b"null",
        b'"x"',
        HUGE.encode(),
        ('{"limit": ' + HUGE + "}").encode(),
        ('{"template_revision": ' + HUGE + ', "template": "t"}').encode(),
        DEEP.encode(),
        b'{"kind": "audio", "source_key": "\xff\xfe.mp4"}',
        b"\xff\xfe\xfd",
        b"{" * 100,
        b'{"a": 1e999999}',
    ]
)


def _json_bytes(value: Any) -> bytes:
    # a huge integer cannot go through json.dumps: a marker string is swapped for its digits
    return json.dumps(value, default=str).replace('"__HUGE__"', HUGE).encode("utf-8", "surrogatepass")


BODIES = st.one_of(
    JSON.map(_json_bytes),
    FIELDED.map(_json_bytes),
    MUTATED.map(_json_bytes),
    st.dictionaries(FIELD_NAMES, st.just("__HUGE__"), min_size=1, max_size=3).map(_json_bytes),
    RAW_BODIES,
    st.binary(max_size=200),
)
SEGMENTS = st.one_of(
    st.text(max_size=40).map(lambda t: quote(t.encode("utf-8", "surrogatepass"), safe="")),
    st.sampled_from(["%ff", "%2e%2e", "..", HUGE, "-1", "0", "9" * 20, "a" * 3000, "%00", "t", "x%2Fy"]),
)
QUERIES = st.one_of(
    st.dictionaries(
        PARAM_NAMES,
        st.one_of(st.text(max_size=30), HOSTILE_TEXT, SCALARS.map(str)),
        max_size=4,
    ).map(lambda d: urlencode({k: v.encode("utf-8", "surrogatepass") for k, v in d.items()})),
    st.sampled_from(
        [
            f"limit={HUGE}",
            f"revision={HUGE}",
            "revision=18446744073709551616",
            "limit=-1&limit=2",
            "%ff=%fe",
            "offset=1e9999",
            "types=" + ",".join(["x"] * 500),
        ]
    ),
)
HEADERS = st.dictionaries(
    st.sampled_from(
        [
            "If-Match",
            "If-None-Match",
            "Last-Event-ID",
            "Accept",
            "Content-Type",
            "Authorization",
            "X-MPR-CSRF",
        ]
    ),
    st.one_of(
        st.sampled_from(
            [
                f'"{HUGE}"',
                '"18446744073709551616"',
                "*",
                '"\u00b2"',
                "1.99999999999999999999.1",
                "text/html",
                "application/graphql-response+json",
                "multipart/form-data; boundary=x",
                "Bearer wrong",
                "Basic x",
            ]
        ),
        st.text(alphabet=st.characters(min_codepoint=33, max_codepoint=255), min_size=1, max_size=40),
    ).map(lambda v: v.encode("utf-8")),
    max_size=3,
)


def _path(template: str, values: list[str]) -> str:
    out, i, parts = [], 0, template.split("/")
    for part in parts:
        if part.startswith("{") and part.endswith("}"):
            out.append(values[i % len(values)] if values else "x")
            i += 1
        else:
            out.append(part)
    return "/".join(out)


def send(
    client: httpx.Client, method: str, url: str, body: bytes | None, headers: dict[str, str]
) -> tuple[int, bytes]:
    """The status and (the start of) the body; an event stream is left after its headers."""
    with client.stream(method, url, content=body, headers=headers) as r:
        if r.headers.get("content-type", "").startswith("text/event-stream"):
            return r.status_code, b""
        data = b""
        for chunk in r.iter_bytes():
            data += chunk
            if len(data) > 65536:
                break
        return r.status_code, data


def check(method: str, url: str, status: int, data: bytes) -> None:
    where = f"{method} {url[:300]}"
    if status >= 500:
        path = url.split("?", 1)[0]
        assert status in (503, 504) and path in SCAN_PATHS, f"{where} -> {status}: {data[:500]!r}"
    if data[:1] == b"{" and b'"errors"' in data:
        try:
            body = json.loads(data)
        except ValueError:
            return
        messages = [e.get("message") for e in body.get("errors") or [] if isinstance(e, dict)]
        assert INTERNAL_ERROR not in messages, f"{where}: a resolver failed: {data[:500]!r}"


# --- the properties ---------------------------------------------------------------------------------
@pytest.mark.parametrize(("method", "template"), ROUTES)
def test_every_route_refuses_hostile_input_without_a_5xx(api, method, template):
    """The same hostile inputs at every route: its path parameters, query string and body."""
    for values, query, body in [
        (["x"], "", b"null"),
        ([HUGE], f"limit={HUGE}&revision={HUGE}", ('{"limit": ' + HUGE + "}").encode()),
        (["%ff%fe"], "revision=18446744073709551616&offset=-1", DEEP.encode()),
        (["a" * 3000], "%ff=%fe", b'{"kind": "audio", "source_key": "\xff\xfe.mp4"}'),
        (["t"], "id=x", json.dumps({"template": "t@18446744073709551616", "glob": "[z-a]"}).encode()),
    ]:
        url = _path(template, values) + (f"?{query}" if query else "")
        sent = body if method in ("POST", "PUT", "PATCH") else None
        status, data = send(
            api, method, url, sent, {"Content-Type": "application/json", "If-Match": f'"{HUGE}"'}
        )
        check(method, url, status, data)


@settings(max_examples=80, deadline=None, suppress_health_check=list(HealthCheck))
@given(
    route=st.sampled_from(ROUTES),
    values=st.lists(SEGMENTS, min_size=1, max_size=3),
    query=QUERIES,
    body=BODIES,
    headers=HEADERS,
    authorized=st.booleans(),
)
def test_no_input_to_any_route_is_a_5xx(api, route, values, query, body, headers, authorized):
    method, template = route
    url = (_path(template, values) + (f"?{query}" if query else ""))[:30_000]  # httpx's URL limit: 64 KiB
    headers = {"Content-Type": "application/json", **headers}
    if not authorized:
        headers["Authorization"] = "Bearer not-the-token"
    status, data = send(api, method, url, body if method in ("POST", "PUT", "PATCH") else None, headers)
    check(method, url, status, data)


# --- GraphQL: every operation of the schema ---------------------------------------------------------
GQL = schema._schema


def _type_ref(t: Any) -> str:
    if isinstance(t, GraphQLNonNull):
        return f"{_type_ref(t.of_type)}!"
    if isinstance(t, GraphQLList):
        return f"[{_type_ref(t.of_type)}]"
    return t.name


def _selection(t: Any, depth: int = 0) -> str:
    named = get_named_type(t)
    if not isinstance(named, GraphQLObjectType):
        return ""
    scalars = [
        n
        for n, f in named.fields.items()
        if isinstance(get_named_type(f.type), GraphQLScalarType | GraphQLEnumType) and not f.args
    ]
    nested = [
        f"{n} {_selection(f.type, depth + 1)}"
        for n, f in named.fields.items()
        if depth < 1
        and isinstance(get_named_type(f.type), GraphQLObjectType)
        and not any(isinstance(a.type, GraphQLNonNull) for a in f.args.values())
    ]
    return "{ " + " ".join(["__typename", *scalars[:12], *nested[:2]]) + " }"


OPERATIONS: list[tuple[str, str, dict[str, Any]]] = []
for _kind, _root in (
    ("query", GQL.query_type),
    ("mutation", GQL.mutation_type),
    ("subscription", GQL.subscription_type),
):
    for _name, _field in (_root.fields if _root else {}).items():
        _vars = {f"v{i}": a for i, a in enumerate(_field.args.values())}
        _decl = ", ".join(f"${v}: {_type_ref(a.type)}" for v, a in _vars.items())
        _args = ", ".join(f"{n}: $v{i}" for i, n in enumerate(_field.args))
        _doc = f"{_kind} Op{f'({_decl})' if _decl else ''} {{ {_name}{f'({_args})' if _args else ''} {_selection(_field.type)} }}"
        OPERATIONS.append((_name, _doc, {v: a.type for v, a in _vars.items()}))


def _value_for(t: Any) -> st.SearchStrategy[Any]:
    """Mostly the right shape (so that resolvers run) with hostile contents, sometimes anything."""
    inner = t.of_type if isinstance(t, GraphQLNonNull) else t
    if isinstance(inner, GraphQLList):
        shaped: st.SearchStrategy[Any] = st.lists(_value_for(inner.of_type), max_size=3)
    elif isinstance(inner, GraphQLInputObjectType):
        shaped = st.fixed_dictionaries({}, optional={n: _value_for(f.type) for n, f in inner.fields.items()})
    elif isinstance(inner, GraphQLEnumType):
        shaped = st.sampled_from(list(inner.values))
    elif inner.name in ("Int", "Float"):
        shaped = st.one_of(st.integers(-(2**31), 2**31 - 1), HOSTILE_NUMBER)
    elif inner.name == "Boolean":
        shaped = st.booleans()
    else:
        shaped = st.one_of(st.text(max_size=30), HOSTILE_TEXT, st.just("__HUGE__"))
    return st.one_of(shaped, shaped, shaped, JSON)


@settings(max_examples=80, deadline=None, suppress_health_check=list(HealthCheck))
@given(
    data=st.data(),
    operation=st.sampled_from(OPERATIONS),
    accept=st.sampled_from(["application/json", "application/graphql-response+json"]),
)
def test_no_graphql_operation_is_a_5xx_or_an_internal_error(api, data, operation, accept):
    name, document, types = operation
    variables = {v: data.draw(_value_for(t), label=v) for v, t in types.items()}
    body = _json_bytes({"query": document, "variables": variables, "operationName": "Op"})
    status, out = send(api, "POST", "/graphql", body, {"Content-Type": "application/json", "Accept": accept})
    check("POST", f"/graphql ({name})", status, out)


@pytest.mark.parametrize("literal", [HUGE, "-" + HUGE, "1e99999", '"x"', "null", "[1]"])
def test_graphql_literal_arguments_of_any_size(api, literal):
    for name, document, _ in OPERATIONS:
        if "$v" not in document:
            continue
        first = document.split("(", 1)[0]
        # the same operation, every argument written inline
        field_part = document.split("{", 1)[1]
        inline = "{" + field_part
        for var in sorted(
            {w for w in inline.replace(")", " ").replace(",", " ").split() if w.startswith("$v")},
            key=len,
            reverse=True,
        ):
            inline = inline.replace(var, literal)
        doc = f"{first.split()[0]} {inline}"
        status, out = send(
            api, "POST", "/graphql", _json_bytes({"query": doc}), {"Content-Type": "application/json"}
        )
        check("POST", f"/graphql ({name} with {literal[:10]})", status, out)


def test_graphql_bodies_that_are_not_objects(api):
    for body in (b"null", b'"x"', b"1", b"[]", b"[null]", DEEP.encode(), HUGE.encode()):
        status, out = send(api, "POST", "/graphql", body, {"Content-Type": "application/json"})
        assert 400 <= status < 500, (body[:20], status, out[:300])


# --- the event loop ---------------------------------------------------------------------------------
CONTROL = b"""
import asyncio, sys

async def answer(reader, writer):
    try:
        while await reader.readuntil(b"\\r\\n\\r\\n"):
            writer.write(b"HTTP/1.1 200 OK\\r\\ncontent-length: 2\\r\\n\\r\\nok")
            await writer.drain()
    except Exception:
        writer.close()

async def main():
    server = await asyncio.start_server(answer, "127.0.0.1", int(sys.argv[1]))
    async with server:
        await server.serve_forever()

asyncio.run(main())
"""


class Poller(threading.Thread):
    """Every 20 ms: GET /health/live, then the same from a control server (an idle asyncio process on
    the same machine), each on its own kept-alive connection. The control's answer times are what the
    machine itself costs at that moment (2 cores shared by many test processes)."""

    def __init__(self, base_url: str, control_url: str) -> None:
        super().__init__(daemon=True)
        self.base_url, self.control_url = base_url, control_url
        self.stop = threading.Event()
        self.samples: list[tuple[float, float]] = []  # (api, control) seconds

    def run(self) -> None:
        with (
            httpx.Client(base_url=self.base_url, timeout=60) as c,
            httpx.Client(base_url=self.control_url, timeout=60) as k,
        ):
            c.get("/health/live")  # connected before measuring
            k.get("/")
            while not self.stop.is_set():
                started = time.perf_counter()
                assert c.get("/health/live").status_code == 200
                api = time.perf_counter() - started
                started = time.perf_counter()
                k.get("/")
                self.samples.append((api, time.perf_counter() - started))
                time.sleep(0.02)

    def excess(self) -> float:
        """The slowest answer beyond what the machine cost then (the control's answers before and after)."""
        worst = 0.0
        for i, (api, _) in enumerate(self.samples):
            nearby = [k for _, k in self.samples[max(0, i - 1) : i + 2]]
            worst = max(worst, api - max(nearby))
        return worst


@pytest.fixture(scope="module")
def control_url() -> Iterator[str]:
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-c", CONTROL.decode(), str(port)])
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                httpx.get(url, timeout=5)
                break
            except httpx.TransportError:
                assert time.monotonic() < deadline and proc.poll() is None, "the control server did not start"
                time.sleep(0.1)
        yield url
    finally:
        proc.terminate()
        proc.wait(10)


def _hostile_round(client: httpx.Client) -> None:
    """The costliest things one may ask: the worst glob's dry run over 300 keys of 40 folders, bad
    globs and revisions, the heaviest GraphQL documents, deep and huge bodies."""
    rule = {"template": "fuzz-poster", "glob": WORST_GLOB, "prefix": "d0/"}
    for method, url, body in [
        ("POST", "/api/rules/dry-run?limit=1000", rule),
        ("POST", "/api/rules/dry-run", {**rule, "glob": "**/" * 12 + "x"}),
        ("POST", "/api/rules", {**rule, "glob": "[z-a]"}),
        ("GET", "/api/templates/fuzz-poster?revision=18446744073709551616", None),
        ("POST", "/api/jobs", {"kind": "thumbnail", "source_key": "a.mp4", "template": f"t@{HUGE}"}),
        (
            "POST",
            "/graphql",
            {"query": "{ " + " ".join(f"a{i}: jobs(limit: 50) {{ id }}" for i in range(20)) + " }"},
        ),
        ("POST", "/graphql", {"query": "{ jobs { id } }#" + "x" * 16000}),
    ]:
        content = _json_bytes(body) if body is not None else None
        status, data = send(client, method, url, content, {"Content-Type": "application/json"})
        check(method, url, status, data)
    for raw in (DEEP.encode(), ('{"limit": ' + HUGE + "}").encode(), b'{"x": "' + b"y" * 500_000 + b'"}'):
        status, data = send(client, "POST", "/api/jobs", raw, {"Content-Type": "application/json"})
        check("POST", "/api/jobs", status, data)


def _measure_under_attack(api: httpx.Client, control_url: str, seconds: float) -> Poller:
    poller = Poller(str(api.base_url), control_url)
    errors: list[BaseException] = []
    stop = threading.Event()

    def attack() -> None:
        try:
            with httpx.Client(base_url=str(api.base_url), headers=AUTH, timeout=60) as c:
                while not stop.is_set():
                    _hostile_round(c)
        except BaseException as exc:  # reported below
            errors.append(exc)

    attackers = [threading.Thread(target=attack, daemon=True)]
    poller.start()
    for t in attackers:
        t.start()
    time.sleep(seconds)  # how long the attack lasts, not a proof of anything
    stop.set()
    for t in attackers:
        t.join(120)
    poller.stop.set()
    poller.join(60)
    assert not errors, errors
    assert len(poller.samples) >= 10, "the poller hardly ran"
    return poller


def test_hostile_requests_never_hold_the_event_loop(api, control_url):
    """/health/live answers within 100 ms while the costliest requests run: 100 ms beyond what an idle
    server on the same machine takes at the same moment, so that a loaded machine (2 cores shared by
    many test processes) is not taken for a blocked loop. A request that holds the loop (the issue's
    glob held it 15 s) shows up as the API's excess over the control, in every round."""
    dry = api.post("/api/rules/dry-run", json={"template": "fuzz-poster", "glob": WORST_GLOB})
    assert dry.status_code == 200 and dry.json()["examined"] == len(ASSETS), dry.text[:500]
    poller = _measure_under_attack(api, control_url, 4)
    if poller.excess() >= LIVE_LIMIT:  # a second round: a stall of the whole machine is not repeated
        poller = _measure_under_attack(api, control_url, 4)
    api_times = [a for a, _ in poller.samples]
    print(
        f"/health/live under attack: {len(api_times)} answers, slowest {max(api_times) * 1000:.1f} ms, "
        f"median {sorted(api_times)[len(api_times) // 2] * 1000:.1f} ms, "
        f"largest excess over the idle control {poller.excess() * 1000:.1f} ms"
    )
    assert poller.excess() < LIVE_LIMIT, (
        f"/health/live took {poller.excess() * 1000:.0f} ms more than an idle server"
    )


def test_the_worst_glob_dry_run_is_cheap(api):
    """The glob of the issue (``**/`` eight times over keys of 40 folders) took 15 s as a regex: now it
    is refused, and the worst glob allowed runs over every key in a fraction of a second."""
    r = api.post("/api/rules/dry-run", json={"template": "fuzz-poster", "glob": "**/" * 8 + "x"})
    assert r.status_code == 400 and "**" in r.json()["detail"]
    started = time.perf_counter()
    r = api.post("/api/rules/dry-run", json={"template": "fuzz-poster", "glob": WORST_GLOB})
    assert r.status_code == 200, r.text
    assert time.perf_counter() - started < 5  # generous: 300 keys of 40 folders


def test_the_issue_s_inputs_are_4xx_with_a_detail(api):
    for method, url, body in [
        ("GET", "/api/templates/t?revision=18446744073709551616", None),
        (
            "POST",
            "/api/jobs",
            {"kind": "thumbnail", "source_key": "a.mp4", "start": 1, "template": "t@18446744073709551616"},
        ),
        ("POST", "/api/rules", {"template": "fuzz-poster", "template_revision": 18446744073709551616}),
        ("POST", "/api/rules", {"template": "fuzz-poster", "glob": "[z-a]"}),
        ("POST", "/api/rules/dry-run", {"template": "fuzz-poster", "glob": "[z-a]"}),
        ("POST", "/api/rules", {"template": "fuzz-poster", "glob": "**/" * 12}),
    ]:
        r = api.request(
            method,
            url,
            content=_json_bytes(body) if body is not None else None,
            headers={"Content-Type": "application/json"},
        )
        assert 400 <= r.status_code < 500 and r.json()["detail"], (url, body, r.status_code, r.text[:300])
    r = api.put(
        "/api/templates/fuzz-poster",
        json={"kind": "thumbnail", "preset": "png-640", "start": 1},
        headers={"If-Match": f'"{HUGE}"'},
    )
    assert r.status_code == 400 and "If-Match" in r.json()["detail"]
    for body in (b"null", b'"x"'):
        r = api.post("/graphql", content=body, headers={"Content-Type": "application/json"})
        assert r.status_code == 400 and r.json()["detail"]
