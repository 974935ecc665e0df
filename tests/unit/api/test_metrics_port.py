"""Metrics are served on the internal ops port (METRICS_PORT) only, never on the API's public port, which
proxies publish; the ops server answers whatever it is sent with a well-formed response."""

from __future__ import annotations

import asyncio
import re

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from litestar.testing import TestClient

import mpr_api.__main__ as api_main
from mpr_api.app import create_app, services
from mpr_api.settings import ApiSettings
from mpr_common.ops_server import MAX_LINE, REASONS, OpsServer
from mpr_devstack.servers import free_port
from tests.fakes import FakeKV, FakeNats
from tests.unit.api.inprocess import serving

TOKEN = "t0ken"


def fakes(settings: ApiSettings) -> dict[str, object]:
    return services(settings, FakeNats(), FakeKV(), public_s3=None, owners_kv=FakeKV())


def make_app(settings: ApiSettings):
    """An app of its own, as ``python -m mpr_api`` serves it: its connection only once its lifespan runs."""
    return create_app(settings, state=fakes(settings))


async def ask(port: int, raw: bytes) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(raw)
    await writer.drain()
    data = await asyncio.wait_for(reader.read(), 10)
    writer.close()
    return data


async def get(port: int, path: str, method: str = "GET") -> tuple[int, bytes]:
    data = await ask(port, f"{method} {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
    head, _, body = data.partition(b"\r\n\r\n")
    return int(head.split(b" ")[1]), body


def test_the_api_port_serves_no_metrics_with_or_without_a_token():
    settings = ApiSettings(tokens=frozenset({TOKEN}))
    with serving(settings, fakes(settings)) as app, TestClient(app, base_url="http://mpr.local") as client:
        assert client.get("/metrics").status_code == 404
        assert client.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"}).status_code == 404
        assert client.get("/health/live").status_code == 200  # probes keep the public port's health


def test_the_ops_server_serves_the_api_metrics_and_its_readiness():
    settings = ApiSettings(tokens=frozenset({TOKEN}))
    with serving(settings, fakes(settings)) as app, TestClient(app, base_url="http://mpr.local") as client:
        client.headers["Authorization"] = f"Bearer {TOKEN}"
        assert (
            client.post("/api/jobs", json={"kind": "thumbnail", "source_key": "a/b.mp4"}).status_code == 202
        )
    ready = [False]

    async def scenario() -> None:
        ops = OpsServer(free_port(), lambda: ready[0], "127.0.0.1")
        await ops.start()
        try:
            status, body = await get(ops.port, "/metrics")
            assert status == 200
            assert re.search(
                rb'^mpr_api_jobs_submitted_total\{kind="thumbnail",outcome="accepted"\} [1-9]', body, re.M
            )
            assert b'mpr_requests_total{method="POST",path="/api/jobs",status_code="202"}' in body
            assert (await get(ops.port, "/health/ready"))[0] == 503
            ready[0] = True
            assert (await get(ops.port, "/health/ready"))[0] == 200
            assert (await get(ops.port, "/health/live"))[0] == 200
            assert (await get(ops.port, "/metrics?x=1"))[0] == 200
            assert (await get(ops.port, "/metricsx"))[0] == 404
            assert (await get(ops.port, "/metrics", "POST"))[0] == 405
            status, body = await get(ops.port, "/metrics", "HEAD")
            assert status == 200 and body == b""
        finally:
            await ops.stop()

    asyncio.run(scenario())


def test_the_api_process_serves_metrics_on_metrics_port_beside_uvicorn(monkeypatch):
    """``python -m mpr_api`` runs the ops server on METRICS_PORT for as long as uvicorn serves."""
    port = free_port()
    seen: list[tuple[int, bytes]] = []

    class FakeUvicorn:
        def __init__(self, config) -> None:
            self.config = config
            self.started = False

        async def serve(self) -> None:
            seen.append(await get(port, "/metrics"))
            seen.append(await get(port, "/health/ready"))
            self.started = True

    monkeypatch.setattr(api_main.uvicorn, "Server", FakeUvicorn)
    settings = ApiSettings(metrics_port=port, metrics_host="127.0.0.1")
    asyncio.run(api_main.serve(settings, make_app(settings)))
    assert seen[0][0] == 200 and b"mpr_api_jobs_submitted_total" in seen[0][1]
    assert seen[1][0] == 503  # the fake state's NATS connection: not connected
    with pytest.raises(OSError):  # and stopped with uvicorn
        asyncio.run(get(port, "/metrics"))


def test_metrics_port_unset_serves_metrics_nowhere(monkeypatch):
    class FakeUvicorn:
        def __init__(self, config) -> None:
            self.started = True

        async def serve(self) -> None:
            pass

    started: list[int] = []
    real_start = OpsServer.start

    async def spy(self) -> None:
        started.append(self.port)
        await real_start(self)
        assert self._server is None

    monkeypatch.setattr(api_main.uvicorn, "Server", FakeUvicorn)
    monkeypatch.setattr(OpsServer, "start", spy)
    settings = ApiSettings()  # METRICS_PORT's one default: 0, off
    asyncio.run(api_main.serve(settings, make_app(settings)))
    assert started == [0]


def test_a_failed_start_is_a_failed_process(monkeypatch):
    class FailingUvicorn:
        def __init__(self, config) -> None:
            self.started = False

        async def serve(self) -> None:
            pass

    monkeypatch.setattr(api_main.uvicorn, "Server", FailingUvicorn)
    settings = ApiSettings()
    with pytest.raises(SystemExit) as exc:
        asyncio.run(api_main.serve(settings, make_app(settings)))
    assert exc.value.code == 3


request_bytes = st.one_of(
    st.binary(max_size=200),
    st.builds(
        lambda m, p, v, h: f"{m} {p} {v}\r\n{h}\r\n".encode("utf-8", "surrogatepass"),
        st.sampled_from(["GET", "HEAD", "POST", "get", "", "GET GET"]),
        st.one_of(
            st.sampled_from(["/metrics", "/health/ready", "/health/live", "/", "*"]), st.text(max_size=40)
        ),
        st.sampled_from(["HTTP/1.1", "HTTP/1.0", "HTTP/2", ""]),
        st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=60),
    ),
    st.just(b"GET /" + b"a" * (MAX_LINE + 10) + b" HTTP/1.1\r\n\r\n"),
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(raw=request_bytes)
def test_any_request_gets_a_well_formed_answer_and_only_get_metrics_gets_metrics(raw: bytes):
    async def scenario() -> bytes:
        ops = OpsServer(free_port(), lambda: True, "127.0.0.1")
        await ops.start()
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", ops.port)
            writer.write(raw)
            writer.write_eof()  # a client that sends no more: the server answers rather than waits
            data = await asyncio.wait_for(reader.read(), 10)
            writer.close()
            return data
        finally:
            await ops.stop()

    data = asyncio.run(scenario())
    status_line = data.split(b"\r\n", 1)[0]
    m = re.fullmatch(rb"HTTP/1\.1 (\d{3}) ([A-Za-z ]+)", status_line)
    assert m, data[:200]
    status = int(m.group(1))
    assert status in REASONS and m.group(2).decode() == REASONS[status]
    first = raw.split(b"\n", 1)[0].rstrip(b"\r")
    if b"# HELP" in data:
        assert status == 200 and re.fullmatch(rb"GET /metrics(\?[^ ]*)? HTTP/1\.[0-9]", first), first
