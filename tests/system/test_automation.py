"""Automation on the whole system (real nats-server with per-service identities, moto S3, the four
services): a rule starts exactly one job from its template for the matching object of a scan, none for
the other, none again on a second scan or a re-published registration; its dry run lists the object as
fired; the same rule fires on a MinIO notification; a full scan marks a deleted object removed; and only
the API identity may touch the automation buckets and the rules consumer."""

from __future__ import annotations

import asyncio
import re
import uuid
from dataclasses import dataclass
from pathlib import Path

import httpx
import nats
import pytest

from mpr_api.automation.rules import rule_job_id
from mpr_common import subjects as s
from mpr_common.identities import JS_API
from tests.system.conftest import wait_for, wait_job
from tests.system.test_bus_security import attempt, refused
from tests.system.test_cli import run_mpr
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


@dataclass
class Rule:
    id: str
    template: str
    revision: int
    prefix: str

    @property
    def template_ref(self) -> str:
        return f"{self.template}@{self.revision}"


def make_rule(api, tag: str) -> Rule:
    """A thumbnail template, and a rule starting it for objects under its prefix at least 360 high."""
    name = f"posters-{tag}"
    r = api.put(f"/api/templates/{name}", json={"kind": "thumbnail", "preset": "png-640", "start": 1.0})
    assert r.status_code == 201, r.text
    rule = Rule(id=f"posters-{tag}", template=name, revision=r.json()["revision"], prefix=f"auto-{tag}/")
    body = {
        "id": rule.id,
        "template": rule.template,
        "prefix": rule.prefix,
        "conditions": [{"field": "height", "op": ">=", "value": 360}],
    }
    assert api.post("/api/rules", json=body).status_code == 201
    return rule


def upload(s3, source: Path, key: str) -> str:
    """``source`` uploaded as ``key``; its ETag, unquoted."""
    s3.upload_file(str(source), BUCKET, key)
    return s3.head_object(Bucket=BUCKET, Key=key)["ETag"].strip('"')


def check_the_rule_started_its_template(api, rule: Rule, job_id: str, key: str) -> None:
    done = wait_for(lambda: api.get(f"/api/jobs/{job_id}").status_code == 200, what="the rule's job")
    assert done
    job = wait_job(api, job_id)["job"]
    assert job["status"] == "completed", (job["error"], job)
    assert (job["kind"], job["preset"], job["source_key"]) == ("thumbnail", "png-640", key)
    assert (job["template"], job["rule"]) == (rule.template_ref, rule.id)
    assert job["output_key"].endswith(".png")


def check_a_probed_non_match_started_nothing(api, rule: Rule, key: str, etag: str) -> None:
    """The catalog's registration of ``key`` reached the rules (it was probed) and started nothing."""
    wait_for(
        lambda: api.get("/api/assets", params={"prefix": key}).json()["items"][0]["probe_status"] == "ok",
        what="the small file's probe",
    )
    assert api.get(f"/api/jobs/{rule_job_id(rule.id, BUCKET, key, etag)}").status_code == 404


def check_no_second_firing(stack, api, rule: Rule, key: str, job_id: str) -> None:
    """A second scan registers nothing new; a re-published registration is claimed already."""
    started, duplicates = firings(stack, "started"), firings(stack, "duplicate")
    again = api.post("/api/assets/scan", json={"prefix": rule.prefix}).json()
    assert (again["registered"], again["skipped"]) == (0, 2)
    asyncio.run(_republish_registration(stack.nats.url, key))
    assert firings(stack, "duplicate") == duplicates + 1 and firings(stack, "started") == started
    assert [
        j["job"]["id"]
        for j in api.get("/api/jobs", params={"limit": 1000}).json()["items"]
        if j["job"].get("rule") == rule.id
    ] == [job_id]


def check_the_dry_run_lists_it_fired(api, rule: Rule, key: str, job_id: str) -> None:
    dry = api.post(f"/api/rules/{rule.id}/dry-run").json()
    assert (dry["matched"], dry["would_start"], dry["already_fired"]) == (1, 0, 1)
    [item] = dry["items"]
    assert (item["key"], item["job_id"], item["fired"], item["firing"]) == (key, job_id, True, "started")


def check_a_minio_notification_fires_it(stack, api, s3, rule: Rule, source: Path) -> None:
    """The same rule on a MinIO notification (scanner → catalog → rules)."""
    notified = f"{rule.prefix}notified.mp4"
    n_etag = upload(s3, source, notified)
    js_publish(
        stack, s.MINIO_EVENTS, minio_record("s3:ObjectCreated:Put", notified.replace("/", "%2F"), 1, n_etag)
    )
    n_job = rule_job_id(rule.id, BUCKET, notified, n_etag)
    wait_for(lambda: api.get(f"/api/jobs/{n_job}").status_code == 200, what="the notified object's job")
    assert wait_job(api, n_job)["job"]["status"] == "completed"


def check_the_cli_submits_from_the_template(stack, api, rule: Rule, key: str, tag: str) -> None:
    """The template from the command line (POST /api/jobs with "template")."""
    cli_job = f"cli-{tag}"
    r = run_mpr(stack, "submit", "thumbnail", key, "--template", rule.template, "--job-id", cli_job)
    assert r.returncode == 0, r.stdout + r.stderr
    made = api.get(f"/api/jobs/{cli_job}").json()["job"]
    assert (made["preset"], made["start"], made["template"], made["rule"]) == (
        "png-640",
        1.0,
        rule.template_ref,
        None,
    )


def check_a_full_scan_marks_a_deleted_object_removed(api, s3, rule: Rule, deleted: str, kept: str) -> None:
    s3.delete_object(Bucket=BUCKET, Key=deleted)
    gone = api.post("/api/assets/scan", json={"prefix": rule.prefix}).json()
    assert gone["removed"] == 1 and deleted not in gone["files"]
    assert api.get("/api/assets", params={"prefix": deleted}).json()["total"] == 0
    assert api.get("/api/assets", params={"prefix": kept}).json()["total"] == 1


def test_a_rule_starts_one_job_per_matching_object_from_scans_and_notifications(stack, api, s3, media_dir):
    tag = uuid.uuid4().hex[:8]
    rule = make_rule(api, tag)
    hd, small = f"{rule.prefix}hd.mp4", f"{rule.prefix}small.mkv"
    etag = {hd: upload(s3, media_dir / "sample.mp4", hd), small: upload(s3, media_dir / "clip.mkv", small)}
    scan = api.post("/api/assets/scan", json={"prefix": rule.prefix}).json()
    assert (scan["found"], scan["registered"]) == (2, 2)

    job_id = rule_job_id(rule.id, BUCKET, hd, etag[hd])
    check_the_rule_started_its_template(api, rule, job_id, hd)  # 640x360
    check_a_probed_non_match_started_nothing(api, rule, small, etag[small])  # 320x240
    check_no_second_firing(stack, api, rule, hd, job_id)
    check_the_dry_run_lists_it_fired(api, rule, hd, job_id)
    check_a_minio_notification_fires_it(stack, api, s3, rule, media_dir / "sample.mp4")
    check_the_cli_submits_from_the_template(stack, api, rule, hd, tag)
    check_a_full_scan_marks_a_deleted_object_removed(api, s3, rule, small, hd)


@pytest.mark.parametrize("identity", ["catalog", "scanner", "transcoder", "publisher", "minio"])
def test_only_the_api_writes_templates_rules_and_firings_and_pulls_the_rules(stack, identity):
    """Least privilege: a forged template, rule or firing claim would start (or suppress) jobs."""
    url = stack.nats.url_as(identity)
    for subject in (f"$KV.{s.TEMPLATES_KV}.x", f"$KV.{s.RULES_KV}.x", f"$KV.{s.RULE_FIRINGS_KV}.x"):
        errors = attempt(url, lambda nc, sub=subject: nc.request(sub, b"{}", timeout=0.3))
        assert refused(errors), (identity, subject, errors)
    next_msg = f"{JS_API}.CONSUMER.MSG.NEXT.{s.ASSETS_STREAM}.{s.RULES_DURABLE}"
    assert refused(attempt(url, lambda nc: nc.request(next_msg, b"{}", timeout=0.3)))
