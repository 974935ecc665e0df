"""MinIO bucket notifications, jobs published straight onto NATS, cancellation, Lambda mode, auth."""

from __future__ import annotations

import asyncio
import json
import urllib.error
import uuid

import httpx
import nats
import pytest

from mpr_common import subjects as s
from mpr_common.codec import encode
from mpr_common.events import JobRequested, new_id
from mpr_common.presets import DEFAULT_PRESET
from mpr_devstack.stack import DEV_API_TOKEN
from mpr_transcoder.lambda_handler import handler
from mpr_transcoder.settings import TranscoderSettings
from tests.media import probe
from tests.system.conftest import wait_for, wait_job

pytestmark = pytest.mark.system


def minio_record(event: str, key_encoded: str, size: int = 0, etag: str = "") -> bytes:
    return json.dumps(
        {
            "EventName": event,
            "Key": f"mpr-media-in/{key_encoded}",
            "Records": [
                {
                    "eventVersion": "2.0",
                    "eventSource": "minio:s3",
                    "eventName": event,
                    "eventTime": "2026-11-24T10:00:00.000Z",
                    "s3": {
                        "bucket": {"name": "mpr-media-in"},
                        "object": {"key": key_encoded, "size": size, "eTag": etag},
                    },
                }
            ],
        }
    ).encode()


async def _js_publish(url: str, subject: str, payload: bytes, msg_id: str | None = None):
    nc = await nats.connect(url)
    try:
        return await nc.jetstream().publish(
            subject, payload, headers={"Nats-Msg-Id": msg_id} if msg_id else None
        )
    finally:
        await nc.close()


def js_publish(stack, subject, payload, msg_id=None):
    return asyncio.run(_js_publish(stack.nats.url, subject, payload, msg_id))


def test_minio_notification_registers_and_removes(stack, api, s3, media_dir):
    key = f"notify-{uuid.uuid4().hex[:6]}/my clip (1).mp4"
    s3.upload_file(str(media_dir / "sample.mp4"), "mpr-media-in", key)
    etag = s3.head_object(Bucket="mpr-media-in", Key=key)["ETag"].strip('"')
    encoded = key.replace("/", "%2F").replace(" ", "+").replace("(", "%28").replace(")", "%29")
    js_publish(stack, s.MINIO_EVENTS, minio_record("s3:ObjectCreated:Put", encoded, 123, etag))

    def registered():
        items = api.get("/api/assets", params={"prefix": key}).json()["items"]
        return items[0] if items and items[0]["probe_status"] == "ok" else None

    asset = wait_for(registered, what="asset from notification")
    assert asset["key"] == key and asset["etag"] == etag and asset["info"]["width"] == 640

    js_publish(stack, s.MINIO_EVENTS, minio_record("s3:ObjectRemoved:Delete", encoded))
    wait_for(lambda: api.get("/api/assets", params={"prefix": key}).json()["total"] == 0, what="removal")


def test_garbage_notification_is_dead_lettered_not_redelivered_forever(stack, api):
    js_publish(stack, s.MINIO_EVENTS, b"{not json")

    async def dlq_has_it():
        nc = await nats.connect(stack.nats.url)
        try:
            info = await nc.jetstream().stream_info(s.DLQ_STREAM)
            return info.state.messages
        finally:
            await nc.close()

    wait_for(lambda: asyncio.run(dlq_has_it()) > 0, what="dead letter")


def test_job_published_straight_onto_nats(stack, api, s3, media_dir):
    """Another service publishes a job without the API: it runs and the catalog records it."""
    key = f"direct-{uuid.uuid4().hex[:6]}/a.mp4"
    s3.upload_file(str(media_dir / "sample.mp4"), "mpr-media-in", key)
    job = JobRequested(job_id=new_id(), kind="thumbnail", source_key=key, requested_by="other-team")
    ack = js_publish(stack, s.JOB_REQUESTED, encode(job), job.job_id)
    assert not ack.duplicate
    again = js_publish(stack, s.JOB_REQUESTED, encode(job), job.job_id)
    assert again.duplicate  # Nats-Msg-Id = job_id: the duplicate is dropped by JetStream
    done = wait_job(api, job.job_id)
    assert done["job"]["status"] == "completed" and done["job"]["attempts"] == 1
    assert probe(done["output_url"])["streams"][0]["codec_name"] == "mjpeg"


def test_a_job_with_only_the_required_fields_is_tracked_as_that_one_job(stack, api, s3, media_dir):
    """docs/asyncapi.json requires kind and source_key only: such a job, with or without a Nats-Msg-Id,
    is one job, under one id, with the preset that was really used."""
    key = f"minimal-{uuid.uuid4().hex[:6]}/a.mp4"
    s3.upload_file(str(media_dir / "sample.mp4"), "mpr-media-in", key)
    body = json.dumps({"kind": "thumbnail", "source_key": key}).encode()
    msg_id = f"team-{uuid.uuid4().hex[:8]}"
    with_id = js_publish(stack, s.JOB_REQUESTED, body, msg_id)
    without = js_publish(stack, s.JOB_REQUESTED, body, None)
    for job_id in (msg_id, f"js-{without.seq}"):
        job = wait_job(api, job_id)["job"]
        assert (job["status"], job["kind"], job["source_key"]) == ("completed", "thumbnail", key), job
        assert job["preset"] == DEFAULT_PRESET["thumbnail"] and job["output_key"].endswith(".jpg")
    assert with_id.seq < without.seq
    others = [
        j
        for j in api.get("/api/jobs", params={"limit": 1000}).json()["items"]
        if j["job"]["source_key"] in ("", key)
    ]
    assert len(others) == 2, others  # no second job with an empty source_key holds the output


def test_cancel_running_job(stack, api, s3, media_dir):
    key = f"cancel-{uuid.uuid4().hex[:6]}/a.mp4"
    s3.upload_file(str(media_dir / "sample.mp4"), "mpr-media-in", key)
    r = api.post("/api/jobs", json={"kind": "transcode", "source_key": key, "preset": "vp9-720p"})
    job_id = r.json()["job"]["id"]
    wait_job(api, job_id, states=("running",), timeout=60)
    c = api.post(f"/api/jobs/{job_id}/cancel")
    assert c.status_code == 202, c.text
    done = wait_job(api, job_id)
    assert done["job"]["status"] == "cancelled"
    again = api.post(f"/api/jobs/{job_id}/cancel")
    assert again.status_code == 409 and "already cancelled" in again.json()["detail"]


def test_cancel_unknown_job_is_404(api):
    r = api.post("/api/jobs/nope-123/cancel")
    assert r.status_code == 404 and "not found" in r.json()["detail"]


def test_corrupt_input_fails_with_reason_and_is_not_retried(stack, api, s3, media_dir):
    for name, why in (("garbage.mp4", "not readable media"), ("truncated.mp4", "truncated")):
        key = f"corrupt-{uuid.uuid4().hex[:6]}/{name}"
        s3.upload_file(str(media_dir / name), "mpr-media-in", key)
        r = api.post("/api/jobs", json={"kind": "transcode", "source_key": key})
        done = wait_job(api, r.json()["job"]["id"])
        job = done["job"]
        assert job["status"] == "failed", job
        assert job["failure_reason"] == "source" and job["attempts"] == 1
        assert why in job["error"], job["error"]


def test_missing_source_fails_cleanly(api):
    r = api.post("/api/jobs", json={"kind": "thumbnail", "source_key": f"missing-{uuid.uuid4().hex}.mp4"})
    done = wait_job(api, r.json()["job"]["id"])
    assert done["job"]["status"] == "failed" and done["job"]["error"] == "source object not found"


def test_lambda_handler_runs_the_same_core_and_calls_back(stack, api, s3, media_dir, tmp_path):
    key = f"lambda-{uuid.uuid4().hex[:6]}/a.mp4"
    s3.upload_file(str(media_dir / "sample.mp4"), "mpr-media-in", key)
    spec = {"kind": "trim", "source_key": key, "start": 1.0, "end": 3.0, "preset": "h264-480p"}
    # Dispatched to Lambda: recorded by the catalog, no NATS worker sees it, and the answer carries
    # the one credential its callbacks are accepted with.
    out = api.post("/api/jobs", json={**spec, "executor": "lambda"}).json()
    job_id, token = out["job"]["id"], out["callback_token"]
    settings = TranscoderSettings.from_env({**stack.env(), "TRANSCODER_WORKDIR": str(tmp_path)})

    def invoke(callback_token: str) -> dict:
        event = {
            "job": {"job_id": job_id, **spec},
            "callback_url": stack.api_url,
            "callback_token": callback_token,
        }
        return handler(event, None, settings=settings)

    with pytest.raises(urllib.error.HTTPError) as refused:  # an API token is not this job's credential
        invoke(DEV_API_TOKEN)
    assert refused.value.code == 401
    r = api.get(f"/api/jobs/{job_id}")
    assert r.status_code == 200 and r.json()["job"]["status"] == "queued", r.text
    result = invoke(token)
    assert result["status"] == "completed", result
    done = wait_job(api, job_id)
    assert done["job"]["status"] == "completed" and done["job"]["worker"] == "lambda"
    assert float(probe(done["output_url"])["format"]["duration"]) == pytest.approx(2.0, abs=0.15)


def test_auth_required_and_errors_are_clean(stack):
    with httpx.Client(base_url=stack.api_url) as anon:
        r = anon.get("/api/jobs")
        assert r.status_code == 401 and "bearer" in r.json()["detail"]
        r = anon.get("/api/jobs", headers={"Authorization": "Bearer wrong"})
        assert r.status_code == 401 and "invalid" in r.json()["detail"]
        r = anon.post("/graphql", json={"query": "{ jobs { id } }"})
        assert r.status_code == 401
        assert anon.get("/health/live").status_code == 200
        assert anon.get("/schema/openapi.json").status_code == 200
    with httpx.Client(base_url=stack.api_url, headers={"Authorization": f"Bearer {DEV_API_TOKEN}"}) as c:
        r = c.post("/api/jobs", content=b"{nope", headers={"Content-Type": "application/json"})
        assert r.status_code == 400
        r = c.post("/api/jobs", json={"kind": "transcode"})
        assert r.status_code == 400 and "source_key" in r.text
        r = c.post("/api/jobs", json={"kind": "transcode", "source_key": "a.mp4", "surprise": 1})
        assert r.status_code == 400
        r = c.post(
            "/graphql",
            json={"query": 'mutation { submitJob(job: {kind: transcode, sourceKey: "../x.mp4"}) { id } }'},
        )
        body = r.json()
        assert (
            body["errors"][0]["extensions"]["code"] == "BAD_REQUEST"
            and "source_key" in body["errors"][0]["message"]
        )
        r = c.post("/graphql", json={"query": "{ nosuchfield }"})
        assert r.status_code in (200, 400) and r.json()["errors"]
