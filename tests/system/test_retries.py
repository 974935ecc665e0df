"""Retries and the dead letter queue on the whole system (real nats-server with per-service identities,
moto S3, the four services): a failed job retried after its source is fixed completes, and its log keeps
both attempts; a filter retries many; a dead request is listed and replayed once."""

from __future__ import annotations

import asyncio
import uuid

import nats
import pytest

from mpr_common import subjects as s
from mpr_common.identities import inbox_prefix
from tests.system.conftest import wait_for, wait_job

pytestmark = pytest.mark.system


def upload(s3, path, key: str) -> None:
    s3.upload_file(str(path), "mpr-media-in", key)


def submit(api, key: str) -> str:
    r = api.post("/api/jobs", json={"kind": "thumbnail", "source_key": key, "start": 0.5})
    assert r.status_code == 202, r.text
    return r.json()["job"]["id"]


def wait_generation(api, job_id: str, retries: int) -> dict:
    """The job once it has ended in generation ``retries``."""

    def ended():
        job = api.get(f"/api/jobs/{job_id}").json()["job"]
        if job["retries"] == retries and job["status"] in ("completed", "failed", "cancelled"):
            return job
        return None

    return wait_for(ended, 120, what=f"job {job_id} to end its retry {retries}")


def test_a_job_retried_after_its_source_is_fixed_completes_and_its_log_keeps_both_attempts(
    api, s3, media_dir
):
    key = f"retry-{uuid.uuid4().hex[:8]}/clip.mp4"
    upload(s3, media_dir / "garbage.mp4", key)
    job_id = submit(api, key)
    failed = wait_job(api, job_id)["job"]
    assert (failed["status"], failed["failure_reason"]) == ("failed", "source"), failed["error"]
    assert failed["retries"] == 0

    upload(s3, media_dir / "sample.mp4", key)  # the source is fixed
    r = api.post(f"/api/jobs/{job_id}/retry")
    assert r.status_code == 202, r.text
    assert (r.json()["job"]["status"], r.json()["job"]["retries"]) == ("queued", 1)
    assert api.post(f"/api/jobs/{job_id}/retry").status_code == 409  # once per generation
    done = wait_generation(api, job_id, 1)
    assert done["status"] == "completed" and done["error"] is None and done["output_key"]

    log = api.get(f"/api/jobs/{job_id}/log").json()
    assert (log["status"], log["retries"], log["error"]) == ("completed", 1, None)
    first, second = log["attempts"]
    assert (first["retry"], first["outcome"], first["reason"]) == (0, "failed", "source")
    assert (second["retry"], second["outcome"], second["reason"]) == (1, "completed", None)
    for a in (first, second):
        assert a["worker"].startswith("transcoder-") and a["ended_at"] >= a["started_at"]
        assert a["duration"] == pytest.approx(a["ended_at"] - a["started_at"], abs=0.001)
    # What FFmpeg (ffprobe) said about the garbage, kept with the failed attempt.
    assert "Invalid data found when processing input" in first["error"] + first["log"]


def test_a_filter_retries_every_job_it_matches(api, s3, media_dir):
    prefix = f"retry-bulk-{uuid.uuid4().hex[:8]}/"
    ids = []
    for name in ("a.mp4", "b.mp4"):
        upload(s3, media_dir / "garbage.mp4", prefix + name)
        ids.append(submit(api, prefix + name))
    for job_id in ids:
        assert wait_job(api, job_id)["job"]["status"] == "failed"
    dry = api.post("/api/retries", json={"prefix": prefix, "reason": "source", "dry_run": True}).json()
    assert sorted(dry["retried"]) == sorted(ids)
    r = api.post("/api/retries", json={"prefix": prefix, "reason": "source"})
    assert r.status_code == 202 and sorted(r.json()["retried"]) == sorted(ids), r.text
    for job_id in ids:  # still garbage: each fails again, in its second generation
        assert wait_generation(api, job_id, 1)["status"] == "failed"
        attempts = api.get(f"/api/jobs/{job_id}/log").json()["attempts"]
        assert [(a["retry"], a["outcome"]) for a in attempts] == [(0, "failed"), (1, "failed")]


def test_a_dead_request_is_listed_and_replayed_once(stack, api):
    marker = uuid.uuid4().hex
    payload = b'{"kind": "thumbnail", "source_key": "' + marker.encode()  # cut short: undecodable

    async def publish() -> None:
        nc = await nats.connect(stack.nats.url_as("publisher"), inbox_prefix=inbox_prefix("publisher"))
        try:
            await nc.jetstream().publish(s.JOB_REQUESTED, payload, headers={"Nats-Msg-Id": marker})
        finally:
            await nc.close()

    asyncio.run(publish())

    def letters() -> list[dict]:
        items = api.get("/api/dead-letters", params={"limit": 1000}).json()["items"]
        return [i for i in items if marker in i["payload"]]

    # The catalog and the transcoders each give up on it: one letter or two, of one message.
    first = wait_for(letters, 30, what="the dead letter")
    original = first[0]["stream_seq"]
    assert {(i["subject"], i["stream_seq"], i["replayable"], i["replayed"]) for i in first} == {
        (s.JOB_REQUESTED, original, True, None)
    }
    assert all("undecodable" in i["error"] for i in first)
    r = api.post(f"/api/dead-letters/{first[-1]['seq']}/replay")
    assert r.status_code == 202, r.text
    for letter in first:  # the message is replayed once, whichever of its letters is asked for
        assert api.post(f"/api/dead-letters/{letter['seq']}/replay").status_code == 409

    # Published again, the request is still undecodable: new letters of the new message.
    def replayed() -> list[dict] | None:
        found = letters()
        return found if any(i["stream_seq"] != original for i in found) else None

    now = wait_for(replayed, 30, what="the replayed request's dead letter")
    newest = now[0]
    assert newest["stream_seq"] > original and newest["replayed"] is None
    assert {i["replayed"]["by"] for i in now if i["stream_seq"] == original} == {"api"}
    listed = api.get("/api/dead-letters", params={"subject": newest["dlq_subject"]}).json()["items"]
    assert newest["seq"] in [i["seq"] for i in listed]
    assert {i["dlq_subject"] for i in listed} == {newest["dlq_subject"]}
