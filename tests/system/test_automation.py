"""Automation on the whole system (real nats-server with per-service identities, moto S3, the four
services): a rule starts exactly one job from its template for the matching object of a scan, none for
the other, none again on a second scan or a re-published registration; its dry run lists the object as
fired; the same rule fires on a MinIO notification; a full scan marks a deleted object removed; and only
the API identity may touch the automation buckets and the rules consumer."""

from __future__ import annotations

import asyncio
import re
import uuid

import httpx
import nats
import pytest

from mpr_api.automation.rules import rule_job_id
from mpr_common import subjects as s
from mpr_common.identities import JS_API
from tests.system.conftest import wait_for, wait_job
from tests.system.test_bus_security import attempt, refused
from tests.system.test_cli import mpr
from tests.system.test_events_and_modes import js_publish, minio_record

pytestmark = pytest.mark.system

BUCKET = "mpr-media-in"


def firings(stack, outcome: str) -> float:
    text = httpx.get(f"http://127.0.0.1:{stack.metrics_ports['api']}/metrics", timeout=5).text
    m = re.search(rf'^mpr_api_rule_firings_total{{outcome="{outcome}"}} (\S+)$', text, re.M)
    return float(m.group(1)) if m else 0.0


async def _republish_registration(url: str, key: str) -> None:
    """Publish the catalog's last registration of ``key`` again (as a re-probe would), then wait until
    the rules consumer has handled it."""
    nc = await nats.connect(url)
    try:
        js = nc.jetstream()
        last = await js.get_last_msg(s.ASSETS_STREAM, s.asset_subject(BUCKET, key))
        await js.publish(last.subject, last.data, headers={"Nats-Msg-Id": uuid.uuid4().hex})
        for _ in range(200):
            info = await js.consumer_info(s.ASSETS_STREAM, s.RULES_DURABLE)
            if info.num_pending == 0 and info.num_ack_pending == 0:
                return
            await asyncio.sleep(0.05)
        raise AssertionError("the rules consumer did not catch up")
    finally:
        await nc.close()


def test_a_rule_starts_one_job_per_matching_object_from_scans_and_notifications(stack, api, s3, media_dir):
    tag = uuid.uuid4().hex[:8]
    prefix, name, rule_id = f"auto-{tag}/", f"posters-{tag}", f"posters-{tag}"
    r = api.put(f"/api/templates/{name}", json={"kind": "thumbnail", "preset": "png-640", "start": 1.0})
    assert r.status_code == 201, r.text
    revision = r.json()["revision"]
    rule = {
        "id": rule_id,
        "template": name,
        "prefix": prefix,
        "conditions": [{"field": "height", "op": ">=", "value": 360}],
    }
    assert api.post("/api/rules", json=rule).status_code == 201

    hd, small = f"{prefix}hd.mp4", f"{prefix}small.mkv"
    s3.upload_file(str(media_dir / "sample.mp4"), BUCKET, hd)  # 640x360
    s3.upload_file(str(media_dir / "clip.mkv"), BUCKET, small)  # 320x240
    etag = {k: s3.head_object(Bucket=BUCKET, Key=k)["ETag"].strip('"') for k in (hd, small)}
    scan = api.post("/api/assets/scan", json={"prefix": prefix}).json()
    assert (scan["found"], scan["registered"]) == (2, 2)

    job_id = rule_job_id(rule_id, BUCKET, hd, etag[hd])
    done = wait_for(lambda: api.get(f"/api/jobs/{job_id}").status_code == 200, what="the rule's job")
    assert done
    job = wait_job(api, job_id)["job"]
    assert job["status"] == "completed", (job["error"], job)
    assert (job["kind"], job["preset"], job["source_key"]) == ("thumbnail", "png-640", hd)
    assert (job["template"], job["rule"]) == (f"{name}@{revision}", rule_id)
    assert job["output_key"].endswith(".png")
    # the small one was probed (the catalog's registration reached the rules) and started nothing
    wait_for(
        lambda: api.get("/api/assets", params={"prefix": small}).json()["items"][0]["probe_status"] == "ok",
        what="the small file's probe",
    )
    assert api.get(f"/api/jobs/{rule_job_id(rule_id, BUCKET, small, etag[small])}").status_code == 404

    # a second scan registers nothing new; a re-published registration is claimed already
    started, duplicates = firings(stack, "started"), firings(stack, "duplicate")
    again = api.post("/api/assets/scan", json={"prefix": prefix}).json()
    assert (again["registered"], again["skipped"]) == (0, 2)
    asyncio.run(_republish_registration(stack.nats.url, hd))
    assert firings(stack, "duplicate") == duplicates + 1 and firings(stack, "started") == started
    assert [
        j["job"]["id"]
        for j in api.get("/api/jobs", params={"limit": 1000}).json()["items"]
        if j["job"].get("rule") == rule_id
    ] == [job_id]

    dry = api.post(f"/api/rules/{rule_id}/dry-run").json()
    assert (dry["matched"], dry["would_start"], dry["already_fired"]) == (1, 0, 1)
    [item] = dry["items"]
    assert (item["key"], item["job_id"], item["fired"], item["firing"]) == (hd, job_id, True, "started")

    # the same rule on a MinIO notification (scanner → catalog → rules)
    notified = f"{prefix}notified.mp4"
    s3.upload_file(str(media_dir / "sample.mp4"), BUCKET, notified)
    n_etag = s3.head_object(Bucket=BUCKET, Key=notified)["ETag"].strip('"')
    js_publish(
        stack, s.MINIO_EVENTS, minio_record("s3:ObjectCreated:Put", notified.replace("/", "%2F"), 1, n_etag)
    )
    n_job = rule_job_id(rule_id, BUCKET, notified, n_etag)
    wait_for(lambda: api.get(f"/api/jobs/{n_job}").status_code == 200, what="the notified object's job")
    assert wait_job(api, n_job)["job"]["status"] == "completed"

    # the template from the command line (POST /api/jobs with "template")
    cli_job = f"cli-{tag}"
    r = mpr(stack, "submit", "thumbnail", hd, "--template", name, "--job-id", cli_job)
    assert r.returncode == 0, r.stdout + r.stderr
    made = api.get(f"/api/jobs/{cli_job}").json()["job"]
    assert (made["preset"], made["start"], made["template"], made["rule"]) == (
        "png-640",
        1.0,
        f"{name}@{revision}",
        None,
    )

    # issue #10 item 7: a full scan marks what it no longer lists as removed
    s3.delete_object(Bucket=BUCKET, Key=small)
    gone = api.post("/api/assets/scan", json={"prefix": prefix}).json()
    assert gone["removed"] == 1 and small not in gone["files"]
    assert api.get("/api/assets", params={"prefix": small}).json()["total"] == 0
    assert api.get("/api/assets", params={"prefix": hd}).json()["total"] == 1


@pytest.mark.parametrize("identity", ["catalog", "scanner", "transcoder", "publisher", "minio"])
def test_only_the_api_writes_templates_rules_and_firings_and_pulls_the_rules(stack, identity):
    """Least privilege: a forged template, rule or firing claim would start (or suppress) jobs."""
    url = stack.nats.url_as(identity)
    for subject in (f"$KV.{s.TEMPLATES_KV}.x", f"$KV.{s.RULES_KV}.x", f"$KV.{s.RULE_FIRINGS_KV}.x"):
        errors = attempt(url, lambda nc, sub=subject: nc.request(sub, b"{}", timeout=0.3))
        assert refused(errors), (identity, subject, errors)
    next_msg = f"{JS_API}.CONSUMER.MSG.NEXT.{s.ASSETS_STREAM}.{s.RULES_DURABLE}"
    assert refused(attempt(url, lambda nc: nc.request(next_msg, b"{}", timeout=0.3)))
