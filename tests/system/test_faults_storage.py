"""Faults of storage and scanning: S3 gone for a while or for good, scheduled and very large scans, a scan
with no scanner running. (Workers and the broker: test_faults.py.)"""

from __future__ import annotations

import time

import pytest

from mpr_common import subjects as s
from tests.system.conftest import wait_for, wait_job
from tests.system.faults import client, stream_events, upload_sample

pytestmark = pytest.mark.system


def test_s3_outage_retries_with_backoff_then_completes(make_stack, s3_proxy, media_dir):
    st = make_stack(1, s3_proxy, TRANSCODER_MAX_DELIVER="10", TRANSCODER_RETRY_MAX="3")
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


def test_s3_gone_too_long_ends_in_dead_letter_and_failed_job(make_stack, s3_proxy):
    st = make_stack(1, s3_proxy, TRANSCODER_MAX_DELIVER="3")
    api = client(st)
    s3_proxy.block()
    job_id = api.post("/api/jobs", json={"kind": "thumbnail", "source_key": "gone/a.mp4"}).json()["job"]["id"]
    done = wait_job(api, job_id, timeout=60)["job"]
    assert done["status"] == "failed" and done["failure_reason"] == "storage"
    assert "gave up after 3 attempts" in done["error"] and done["attempts"] == 3
    dead = [e for e in stream_events(st.nats.url, s.DLQ_STREAM, s.DLQ_JOBS) if e.get("job_id") == job_id]
    assert len(dead) == 1 and dead[0]["deliveries"] == 3 and job_id in dead[0]["payload"]


def test_scheduled_scan_registers_new_uploads(make_stack, media_dir):
    st = make_stack(transcoders=0, SCANNER_INTERVAL="1")
    api = client(st)
    key = upload_sample(st, media_dir)
    asset = wait_for(
        lambda: next(iter(api.get("/api/assets", params={"prefix": key}).json()["items"]), None),
        timeout=30,
        what="the scheduled scan to find the upload",
    )
    assert asset["key"] == key


def test_large_scan_is_chunked_under_the_nats_payload_limit(make_stack):
    """1,500 objects with long keys (about 920 bytes, S3 allows 1,024): the listing is ~1.6 MB of events
    and its keys alone 1.4 MB, more than one NATS message may carry (and a quarter of the uploads the
    same size took with short keys)."""
    from concurrent.futures import ThreadPoolExecutor

    st = make_stack(transcoders=0, CATALOG_PROBE_CONCURRENCY="1")
    s3c = st.s3_client()
    n = 1500
    pad = "k" * 900
    with ThreadPoolExecutor(16) as pool:
        list(
            pool.map(
                lambda i: s3c.put_object(Bucket="mpr-media-in", Key=f"bulk/{i:05d}{pad}.mp4", Body=b"x"),
                range(n),
            )
        )
    api = client(st)
    r = api.post("/api/assets/scan", json={"prefix": "bulk/"}, timeout=300)
    assert r.status_code == 200, r.text
    body = r.json()
    assert (body["found"], body["registered"], body["skipped"]) == (n, n, 0)
    assert len(set(body["files"])) == n
    assert api.get("/api/assets", params={"prefix": "bulk/", "limit": 1}).json()["total"] == n


def test_scan_without_a_scanner_is_503_with_the_reason(make_stack):
    st = make_stack(transcoders=0)
    st.services["scanner"].stop()
    r = client(st).post("/api/assets/scan")
    assert r.status_code == 503 and r.json()["detail"] == "no scanner service is running"
