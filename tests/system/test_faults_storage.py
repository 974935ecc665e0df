"""Faults of storage and scanning: S3 gone for a while or for good, scheduled and very large scans, a scan
with no scanner running. (Workers: test_faults.py; the broker: test_faults_broker.py.)

The tests share one stack whose services reach S3 only through a switchable proxy; each leaves the proxy
open, stops the processes it started and restores the job queue's settings it changed."""

from __future__ import annotations

import time
from collections.abc import Iterator

import httpx
import pytest

from mpr_common import subjects as s
from mpr_devstack.stack import Stack
from mpr_devstack.tcp_proxy import TcpProxy
from tests.system.conftest import wait_for, wait_job
from tests.system.faults import Replicas, client, job_queue, stream_events, upload_sample

pytestmark = pytest.mark.system


@pytest.fixture(scope="module")
def st(make_shared_stack, shared_s3_proxy) -> Stack:
    # Probes of the large scan's 1,500 one-byte objects, one at a time: they would only compete for CPU.
    return make_shared_stack(0, shared_s3_proxy, CATALOG_PROBE_CONCURRENCY="1")


class S3Switch:
    """The shared proxy to S3, switched back on when the test ends."""

    def __init__(self, proxy: TcpProxy) -> None:
        self.proxy = proxy
        self.blocked = False

    def block(self) -> None:
        self.proxy.block()
        self.blocked = True

    def unblock(self) -> None:
        self.proxy.unblock()
        self.blocked = False


@pytest.fixture
def s3_proxy(shared_s3_proxy: TcpProxy) -> Iterator[S3Switch]:
    switch = S3Switch(shared_s3_proxy)
    yield switch
    if switch.blocked:
        switch.unblock()


@pytest.fixture
def replicas(st: Stack) -> Iterator[Replicas]:
    r = Replicas(st)
    yield r
    r.stop()


def test_s3_outage_retries_with_backoff_then_completes(st, s3_proxy, replicas, media_dir):
    with job_queue(st, TRANSCODER_MAX_DELIVER="10"):
        replicas.start("transcoder-outage", TRANSCODER_RETRY_MAX="3")
        replicas.wait_ready("transcoder-outage")  # S3 goes away under a running replica
        api = client(st)
        key = upload_sample(st, media_dir)
        s3_proxy.block()
        job_id = api.post("/api/jobs", json={"kind": "thumbnail", "source_key": key}).json()["job"]["id"]
        time.sleep(5)
        during = api.get(f"/api/jobs/{job_id}").json()["job"]
        assert during["status"] in ("queued", "running")
        s3_proxy.unblock()
        done = wait_job(api, job_id, timeout=60)["job"]
        assert done["status"] == "completed", done
        assert done["attempts"] >= 2


def test_s3_gone_too_long_ends_in_dead_letter_and_failed_job(st, s3_proxy, replicas):
    with job_queue(st, TRANSCODER_MAX_DELIVER="3"):
        replicas.start("transcoder-gone")
        replicas.wait_ready("transcoder-gone")
        api = client(st)
        s3_proxy.block()
        job_id = api.post("/api/jobs", json={"kind": "thumbnail", "source_key": "gone/a.mp4"}).json()["job"][
            "id"
        ]
        done = wait_job(api, job_id, timeout=60)["job"]
        assert done["status"] == "failed" and done["failure_reason"] == "storage"
        assert "gave up after 3 attempts" in done["error"] and done["attempts"] == 3
        dead = [e for e in stream_events(st.nats.url, s.DLQ_STREAM, s.DLQ_JOBS) if e.get("job_id") == job_id]
        assert len(dead) == 1 and dead[0]["deliveries"] == 3 and job_id in dead[0]["payload"]


# Before the large scan: a scan every second of 1,500 more objects would only load the machine.
def test_scheduled_scan_registers_new_uploads(st, media_dir):
    # A replica of its own scans every second; nothing else scans (moto sends no notifications).
    scheduled = st.start_service("scanner", "scanner-scheduled", env={"SCANNER_INTERVAL": "1"})
    try:
        api = client(st)
        key = upload_sample(st, media_dir)
        asset = wait_for(
            lambda: next(iter(api.get("/api/assets", params={"prefix": key}).json()["items"]), None),
            timeout=30,
            what="the scheduled scan to find the upload",
        )
        assert asset["key"] == key
    finally:
        scheduled.stop()


def test_large_scan_is_chunked_under_the_nats_payload_limit(st):
    """1,200 objects with long keys (1,014 bytes, S3 allows 1,024): the listing's keys alone are 1.2 MB,
    more than one NATS message may carry (1 MiB), and its events more (long keys make such a listing
    with far fewer uploads than short ones would)."""
    from concurrent.futures import ThreadPoolExecutor

    # Plain PUTs straight to S3 (moto checks no signature), not boto3 through the services' proxy: how
    # the objects got there is not the point, and S3 clients and proxies would only spend CPU on them.
    assert st.moto
    n = 1200
    pad = "k" * 1000
    with httpx.Client(base_url=st.moto.url) as s3, ThreadPoolExecutor(8) as pool:
        puts = pool.map(lambda i: s3.put(f"/mpr-media-in/bulk/{i:05d}{pad}.mp4", content=b"x"), range(n))
        assert {r.status_code for r in puts} == {200}
    api = client(st)
    r = api.post("/api/assets/scan", json={"prefix": "bulk/"}, timeout=300)
    assert r.status_code == 200, r.text
    body = r.json()
    assert (body["found"], body["registered"], body["skipped"]) == (n, n, 0)
    assert len(set(body["files"])) == n
    assert api.get("/api/assets", params={"prefix": "bulk/", "limit": 1}).json()["total"] == n


# Last: it stops the stack's scanner.
def test_scan_without_a_scanner_is_503_with_the_reason(st):
    st.services["scanner"].stop()
    r = client(st).post("/api/assets/scan")
    assert r.status_code == 503 and r.json()["detail"] == "no scanner service is running"
