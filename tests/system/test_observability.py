"""Prometheus metrics and health endpoints of every service; JSON logs."""

from __future__ import annotations

import json
import uuid

import httpx
import pytest

from tests.system.conftest import wait_for, wait_job

pytestmark = pytest.mark.system


def scrape(port: int) -> str:
    r = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5)
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain")
    return r.text


def value(text: str, name: str, **labels: str) -> float | None:
    for line in text.splitlines():
        if line.startswith(name) and all(f'{k}="{v}"' in line for k, v in labels.items()):
            return float(line.rsplit(" ", 1)[1])
    return None


def test_metrics_and_health(stack, api, s3, media_dir):
    key = f"metrics-{uuid.uuid4().hex[:6]}/a.mp4"
    s3.upload_file(str(media_dir / "sample.mp4"), "mpr-media-in", key)
    api.post("/api/assets/scan", json={"prefix": key.split("/")[0] + "/"})
    job = api.post("/api/jobs", json={"kind": "thumbnail", "source_key": key}).json()["job"]
    done = wait_job(api, job["id"])["job"]
    worker = done["worker"]

    t = scrape(stack.metrics_ports[worker])
    assert value(t, "mpr_transcoder_jobs_total", kind="thumbnail", outcome="completed") >= 1
    assert value(t, "mpr_transcoder_job_duration_seconds_count", kind="thumbnail") >= 1
    assert value(t, "mpr_transcoder_jobs_in_flight") is not None
    wait_for(
        lambda: (
            value(
                scrape(stack.metrics_ports[worker]), "mpr_jetstream_consumer_pending", consumer="transcoders"
            )
            is not None
        ),
        what="consumer lag gauge",
    )

    wait_for(
        lambda: (
            (value(scrape(stack.metrics_ports["catalog"]), "mpr_catalog_jobs", state="completed") or 0) >= 1
        ),
        timeout=30,
        what="catalog job gauge",
    )
    # The job does not wait for the catalog's probe of its source (the transcoder probes itself then):
    # the probe may finish after the job.
    wait_for(
        lambda: (
            (
                value(
                    scrape(stack.metrics_ports["catalog"]),
                    "mpr_catalog_probe_duration_seconds_count",
                    outcome="ok",
                )
                or 0
            )
            >= 1
        ),
        timeout=30,
        what="catalog probe histogram",
    )
    c = scrape(stack.metrics_ports["catalog"])
    assert value(c, "mpr_catalog_events_total", subject="mpr.jobs.completed") >= 1

    sc = scrape(stack.metrics_ports["scanner"])
    assert value(sc, "mpr_scanner_objects_total", source="scan", event="found") >= 1

    # The API's metrics are on its ops port only: its public port is what proxies publish.
    a = scrape(stack.metrics_ports["api"])
    assert value(a, "mpr_api_jobs_submitted_total", kind="thumbnail", outcome="accepted") >= 1
    assert value(a, "mpr_requests_total", method="POST", path="/api/jobs", status_code="202") >= 1
    assert httpx.get(f"{stack.api_url}/metrics").status_code == 404
    assert api.get("/metrics").status_code == 404  # a token does not open it either

    for name in ("catalog", "scanner", worker, "api"):
        base = f"http://127.0.0.1:{stack.metrics_ports[name]}"
        assert httpx.get(f"{base}/health/live").status_code == 200
        assert httpx.get(f"{base}/health/ready").status_code == 200
    assert httpx.get(f"{stack.api_url}/health/ready").status_code == 200


def test_logs_are_json_lines(stack):
    for name, proc in stack.services.items():
        lines = [ln for ln in proc.log_path.read_text().splitlines() if ln.strip()]
        assert lines, name
        for ln in lines:
            doc = json.loads(ln)  # every line, uvicorn's included
            assert {"ts", "level", "service", "msg"} <= doc.keys()


def test_trace_context_travels_from_http_through_nats(stack, api, s3, media_dir):
    from mpr_common import subjects as s
    from mpr_common.tracing import trace_id_of
    from tests.system.faults import stream_events

    key = f"trace-{uuid.uuid4().hex[:6]}/a.mp4"
    s3.upload_file(str(media_dir / "sample.mp4"), "mpr-media-in", key)
    trace_id = uuid.uuid4().hex
    r = api.post(
        "/api/jobs",
        json={"kind": "thumbnail", "source_key": key},
        headers={"traceparent": f"00-{trace_id}-{uuid.uuid4().hex[:16]}-01"},
    )
    job_id = r.json()["job"]["id"]
    assert wait_job(api, job_id)["job"]["status"] == "completed"
    events = [
        e for e in stream_events(stack.nats.url, s.JOBS_STREAM, s.JOBS_ALL) if e.get("job_id") == job_id
    ]
    by_subject = {e["subject"]: e for e in events}
    assert trace_id_of(by_subject[s.JOB_REQUESTED]["headers"]) == trace_id  # api → NATS
    assert trace_id_of(by_subject[s.JOB_COMPLETED]["headers"]) == trace_id  # transcoder continues it
    assert trace_id_of(by_subject[s.JOB_PROGRESS]["headers"]) == trace_id
