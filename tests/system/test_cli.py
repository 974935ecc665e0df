"""The `mpr` command line against the running system: upload → scan → submit --watch → list."""

from __future__ import annotations

import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from mpr_devstack.stack import DEV_API_TOKEN

pytestmark = pytest.mark.system
MPR = str(Path(sys.executable).parent / "mpr")


def mpr(stack, *args: str) -> subprocess.CompletedProcess:
    env = {**stack.env(), "MPR_API_URL": stack.api_url, "MPR_TOKEN": DEV_API_TOKEN, "COLUMNS": "200"}
    return subprocess.run([MPR, *args], env=env, capture_output=True, text=True, timeout=180)


def test_cli_round_trip(stack, s3, media_dir):
    prefix = f"cli-{uuid.uuid4().hex[:6]}/"
    r = mpr(stack, "upload", str(media_dir / "sample.mp4"), str(media_dir / "tone.flac"), "--prefix", prefix)
    assert r.returncode == 0, r.stderr
    assert s3.head_object(Bucket="mpr-media-in", Key=f"{prefix}sample.mp4")["ContentLength"] > 0

    r = mpr(stack, "scan", "--prefix", prefix)
    assert r.returncode == 0 and "found 2, registered 2, skipped 0" in r.stdout, r.stdout + r.stderr

    job_id = f"cli-{uuid.uuid4().hex[:8]}"
    r = mpr(stack, "submit", "thumbnail", f"{prefix}sample.mp4", "--job-id", job_id, "--watch")
    assert r.returncode == 0, r.stdout + r.stderr
    assert f"job {job_id} queued" in r.stdout and "completed: s3://mpr-media-out/" in r.stdout

    r = mpr(stack, "list", "jobs", "--status", "completed", "--limit", "500")
    assert r.returncode == 0 and job_id in r.stdout
    r = mpr(stack, "list", "assets", "--prefix", prefix)
    assert r.returncode == 0 and "sample.mp4" in r.stdout and "tone.flac" in r.stdout


def test_cli_errors_are_clear(stack):
    r = mpr(stack, "submit", "trim", "a.mp4")
    assert r.returncode != 0 and "400" in r.stderr and "start" in r.stderr
    r = mpr(stack, "watch", "no-such-job")
    assert r.returncode != 0 and "404" in r.stderr
    r = mpr(stack, "upload", "/nonexistent/file.mp4")
    assert r.returncode != 0 and "no such file" in r.stderr
    r = subprocess.run([MPR, "--api-url", "http://127.0.0.1:9", "scan"], capture_output=True, text=True)
    assert r.returncode != 0 and "cannot reach the API" in r.stderr
