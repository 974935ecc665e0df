"""keep_if on the shared stack, with real FFmpeg: a transcode whose output has more bytes per second than
its source (a source encoded at CRF 51, re-encoded at the preset's CRF 24; in chunks, judged once on the
joined output) is not kept: completed, outcome stated, no object in the output bucket, no output link;
one that is smaller (a lossless source) is kept; a PSNR floor above what the encode reaches drops it. A rule
on job.not_kept starts its fallback (a stream copy) on the source of the output not kept."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from mpr_api.automation.rules import not_kept_version, rule_job_id
from tests.media import ffmpeg
from tests.system.conftest import wait_job

pytestmark = pytest.mark.system

OUT = "mpr-media-out"


def lavfi_source(path: Path, seconds: int, *quality: str) -> Path:
    """testsrc2 at 320x180, 10 fps, no sound, encoded by x264 with ``quality``."""
    src = f"testsrc2=size=320x180:rate=10:duration={seconds}"
    ffmpeg("-f", "lavfi", "-i", src, "-c:v", "libx264", "-preset", "ultrafast", *quality, "-g", "10",
           "-pix_fmt", "yuv420p", "-movflags", "+faststart", str(path))  # fmt: skip
    return path


@pytest.fixture(scope="module")
def sources(s3, tmp_path_factory) -> dict[str, str]:
    tmp = tmp_path_factory.mktemp("keep")
    folder = f"keep-{uuid.uuid4().hex[:6]}"
    made = {
        "starved": lavfi_source(tmp / "starved.mp4", 8, "-crf", "51"),  # ~7.7 kB/s
        "lossless": lavfi_source(tmp / "lossless.mp4", 3, "-qp", "0"),  # ~80 kB/s
    }
    keys = {}
    for name, path in made.items():
        keys[name] = f"{folder}/{name}.mp4"
        s3.upload_file(str(path), "mpr-media-in", keys[name])
    return keys


def submit(api, **body) -> str:
    r = api.post("/api/jobs", json={"kind": "transcode", "preset": "h264-480p", **body})
    assert r.status_code == 202, r.text
    return r.json()["job"]["id"]


def objects(s3, key: str) -> list[str]:
    return [o["Key"] for o in s3.list_objects_v2(Bucket=OUT, Prefix=key).get("Contents", [])]


def test_larger_or_below_the_floor_is_not_kept_and_smaller_is(api, s3, sources):
    rule_id = f"remux-{uuid.uuid4().hex[:6]}"
    r = api.put(f"/api/templates/{rule_id}", json={"kind": "transcode", "preset": "copy"})
    assert r.status_code == 201, r.text
    rule = {"id": rule_id, "template": rule_id, "on": "job.not_kept", "prefix": sources["starved"]}
    assert api.post("/api/rules", json=rule).status_code == 201
    larger = submit(api, source_key=sources["starved"], keep_if="smaller", chunk_seconds=4)
    smaller = submit(api, source_key=sources["lossless"], keep_if="smaller")
    floor = submit(api, source_key=sources["lossless"], min_psnr=60)

    done = wait_job(api, larger, timeout=240)
    job = done["job"]
    assert (job["status"], job["outcome"], done["output_url"]) == ("completed", "not_kept", None), job
    assert len([c for c in job["children"] if "-c0" in c]) == 2  # chunked: judged once, on the join
    keep = job["keep"]
    assert (keep["keep_if"], keep["kept"], keep["reason"]) == ("smaller", False, "larger"), keep
    assert keep["output_rate"] > keep["source_rate"] > 0 and keep["output_size"] > 0
    assert keep["detail"].startswith("output ") and " > source " in keep["detail"]
    assert job["output_keys"] == [] and job["output_size"] is None and job["error"] is None
    assert job["attempts"] == 1 and job["retries"] == 0  # an outcome, not a failure: never retried
    assert objects(s3, job["output_key"]) == []
    # the rule's fallback, on the same source, once
    fallback = rule_job_id(rule_id, "mpr-media-in", sources["starved"], not_kept_version(larger, 0))
    copy = wait_job(api, fallback, timeout=120)["job"]
    assert (copy["status"], copy["rule"], copy["preset"]) == ("completed", rule_id, "copy"), copy
    assert copy["source_key"] == sources["starved"] and objects(s3, copy["output_key"]) == [
        copy["output_key"]
    ]

    job = wait_job(api, smaller, timeout=180)["job"]
    assert (job["status"], job["outcome"]) == ("completed", "kept"), job
    assert job["keep"]["kept"] and job["keep"]["output_rate"] <= job["keep"]["source_rate"]
    assert objects(s3, job["output_key"]) == [job["output_key"]]

    job = wait_job(api, floor, timeout=180)["job"]
    assert (job["status"], job["outcome"]) == ("completed", "not_kept"), job
    keep = job["keep"]
    assert (keep["keep_if"], keep["reason"], keep["min_psnr"]) == ("always", "below_min_psnr", 60.0), keep
    assert keep["psnr"] == job["quality"]["psnr"]["mean"] < 60  # the measured mean it was held to
    assert objects(s3, job["output_key"]) == []
