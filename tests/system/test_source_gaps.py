"""A source whose timestamps jump, through the whole stack: a 12 KB MKV whose second frame is 8,000 s
(over two hours) after the first (under the 12 h source limit) fails in seconds with the source's reason, chunked or not,
not after minutes of duplicated frames; a variable frame rate source next to it completes."""

from __future__ import annotations

import time
import uuid

import pytest

from tests.media import make_timed_mkv
from tests.system.conftest import wait_job

pytestmark = pytest.mark.system


def timed_mkv(path, frames: int, pts: str) -> bytes:
    return make_timed_mkv(path, frames, pts).read_bytes()


def test_a_jump_of_hours_fails_in_seconds_and_a_vfr_source_completes(api, s3, stack, tmp_path):
    prefix = f"gaps-{uuid.uuid4().hex[:6]}"
    s3.put_object(
        Bucket=stack.bucket_in, Key=f"{prefix}/jump.mkv", Body=timed_mkv(tmp_path / "j.mkv", 2, "N*8000")
    )
    vfr = "if(lt(N,50),N*0.04,2+(N-50)*0.5)"  # 2 s at 25 fps, then 2 fps
    s3.put_object(
        Bucket=stack.bucket_in, Key=f"{prefix}/vfr.mkv", Body=timed_mkv(tmp_path / "v.mkv", 60, vfr)
    )

    # Its declared length (8,000 s) makes a chunked transcode of it by default: whichever chunk meets
    # the gap (or the emptiness after it) first fails the job for the source. As one job (chunk_seconds
    # 0), the frame-gap check names the jump. (Hours, not the limit's eleven: the failed graph's
    # bookkeeping costs CPU per planned chunk, and any jump past the 900 s frame-gap check makes the point.)
    for options, says in (({}, "source"), ({"chunk_seconds": 0}, "timestamps jump by about 799")):
        t0 = time.monotonic()
        body = {"kind": "transcode", "source_key": f"{prefix}/jump.mkv", **options}
        r = api.post("/api/jobs", json=body)
        assert r.status_code == 202, r.text
        job = wait_job(api, r.json()["job"]["id"], timeout=120)["job"]
        elapsed = time.monotonic() - t0
        assert job["status"] == "failed" and job["failure_reason"] == "source", job
        assert says in job["error"], (options, job["error"])
        # The stall limit (300 s) would have ended it only after minutes.
        assert elapsed < 100, (options, elapsed)

    r = api.post("/api/jobs", json={"kind": "transcode", "source_key": f"{prefix}/vfr.mkv"})
    job = wait_job(api, r.json()["job"]["id"], timeout=180)["job"]
    assert job["status"] == "completed", (job["failure_reason"], job["error"])
