"""The published AsyncAPI document is generated from the code and describes the real payloads."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest

from mpr_common import asyncapi
from mpr_common import subjects as s
from mpr_common.codec import encode
from mpr_common.events import JobCompleted, JobFailed, JobPlayable, JobProgress, JobRequested, ObjectFound

DOC_PATH = Path(__file__).resolve().parents[3] / "docs" / "asyncapi.json"


def test_committed_document_is_current():
    assert DOC_PATH.read_text() == asyncapi.render(), (
        "run: uv run python -m mpr_common.asyncapi > docs/asyncapi.json"
    )


@pytest.fixture(scope="module")
def doc():
    return json.loads(DOC_PATH.read_text())


def validator(doc, name):
    return jsonschema.Draft202012Validator(
        {"$ref": f"#/components/schemas/{name}", "components": doc["components"]}
    )


@pytest.mark.parametrize(
    "event",
    [
        JobRequested(kind="trim", source_key="a.mp4", start=1, end=2),
        JobProgress(job_id="j", progress=42.5, speed=1.5),
        JobCompleted(job_id="j", output_key="o.mp4", output_bucket="b", output_keys=["o.mp4"]),
        JobPlayable(job_id="j", output_key="p/master.m3u8", output_bucket="b", retry=1),
        JobFailed(job_id="j", error="boom", reason="source"),
        ObjectFound(bucket="b", key="k.mp4", etag="e"),
    ],
)
def test_real_payloads_validate(doc, event):
    validator(doc, type(event).__name__).validate(json.loads(encode(event)))


def test_what_another_team_would_publish(doc):
    v = validator(doc, "JobRequested")
    v.validate({"kind": "thumbnail", "source_key": "videos/a.mp4"})
    assert list(v.iter_errors({"kind": "thumbnail"}))  # source_key is required
    assert list(v.iter_errors({"kind": "explode", "source_key": "a.mp4"}))  # unknown kind


def test_every_job_subject_is_documented(doc):
    addresses = {c["address"] for c in doc["channels"].values()}
    assert {
        s.JOB_REQUESTED,
        s.JOB_DISPATCHED,
        s.JOB_PROGRESS,
        s.JOB_COMPLETED,
        s.JOB_PLAYABLE,
        s.JOB_FAILED,
        s.JOB_CANCEL,
        s.OBJECT_FOUND,
        s.OBJECT_REMOVED,
        s.ASSET_REGISTERED + ".{object}",
        s.SCAN_STATUS,
        s.MINIO_EVENTS,
    } <= addresses
    req = doc["components"]["messages"]["JobRequested"]
    assert "Nats-Msg-Id" in req["headers"]["properties"]
    for op in doc["operations"].values():
        assert op["channel"]["$ref"].removeprefix("#/channels/") in doc["channels"]
