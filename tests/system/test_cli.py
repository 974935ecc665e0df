"""The `mpr` command line against the running system: upload → scan → submit --watch → list."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import threading
import time
import uuid
import warnings
from collections.abc import Iterator
from pathlib import Path

import pytest

from mpr_devstack.stack import DEV_API_TOKEN
from mpr_devstack.zygote.client import Launcher, Refused

pytestmark = pytest.mark.system
MPR = str(Path(sys.executable).parent / "mpr")


def run_mpr(stack, *args: str) -> subprocess.CompletedProcess:
    """One ``mpr args`` against the stack's API, as the installed script (for other test files)."""
    env = {**stack.env(), "MPR_API_URL": stack.api_url, "MPR_TOKEN": DEV_API_TOKEN, "COLUMNS": "200"}
    return subprocess.run([MPR, *args], env=env, capture_output=True, text=True, timeout=180)


class Commands:
    """``mpr`` commands with piped output, forked by a launcher that imported the CLI once (each
    command costs about 0.7 s of CPU in imports otherwise): each runs ``python -m mpr_cli``, what the
    ``mpr`` script runs, in a process of its own with its own argv, environment and stdio."""

    def __init__(self, stack) -> None:
        self.stack = stack
        self.launcher = Launcher(["mpr_cli"])

    def run(self, args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess:
        with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
            stdin = os.open(os.devnull, os.O_RDONLY)
            try:
                proc = self.launcher.spawn(
                    "mpr_cli", args, env, [stdin, out.fileno(), err.fileno()], os.getcwd()
                )
            except Refused as exc:  # an import of the CLI read a variable that ``env`` sets otherwise
                warnings.warn(f"mpr run as the installed script: {exc}", stacklevel=2)
                return subprocess.run([MPR, *args], env=env, capture_output=True, text=True, timeout=180)
            finally:
                os.close(stdin)
            try:
                code = proc.wait(180)
            except subprocess.TimeoutExpired:
                proc.kill()
                raise
            out.seek(0)
            err.seek(0)
            return subprocess.CompletedProcess(["mpr", *args], code, out.read().decode(), err.read().decode())

    def __call__(self, *args: str, columns: int = 200) -> subprocess.CompletedProcess:
        """``mpr args`` against the stack's API."""
        env = {
            **self.stack.env(),
            "MPR_API_URL": self.stack.api_url,
            "MPR_TOKEN": DEV_API_TOKEN,
            "COLUMNS": str(columns),
        }
        return self.run(list(args), env)


@pytest.fixture(scope="module")
def mpr(stack) -> Iterator[Commands]:
    commands = Commands(stack)
    yield commands
    commands.launcher.stop()


def test_cli_round_trip(mpr, s3, media_dir):
    prefix = f"cli-{uuid.uuid4().hex[:6]}/"
    r = mpr("upload", str(media_dir / "sample.mp4"), str(media_dir / "tone.flac"), "--prefix", prefix)
    assert r.returncode == 0, r.stderr
    assert s3.head_object(Bucket="mpr-media-in", Key=f"{prefix}sample.mp4")["ContentLength"] > 0

    r = mpr("scan", "--prefix", prefix)
    assert r.returncode == 0 and "found 2, registered 2, skipped 0" in r.stdout, r.stdout + r.stderr

    job_id = f"cli-{uuid.uuid4().hex[:8]}"
    r = mpr("submit", "thumbnail", f"{prefix}sample.mp4", "--job-id", job_id, "--watch")
    assert r.returncode == 0, r.stdout + r.stderr
    assert f"job {job_id} queued" in r.stdout and "completed: s3://mpr-media-out/" in r.stdout

    r = mpr("list", "jobs", "--status", "completed", "--limit", "500")
    assert r.returncode == 0 and job_id in r.stdout
    r = mpr("list", "assets", "--prefix", prefix)
    assert r.returncode == 0 and "sample.mp4" in r.stdout and "tone.flac" in r.stdout


def test_cli_errors_are_clear(mpr):
    r = mpr("submit", "trim", "a.mp4")
    assert r.returncode != 0 and "400" in r.stderr and "start" in r.stderr
    r = mpr("watch", "no-such-job")
    assert r.returncode != 0 and "404" in r.stderr
    r = mpr("upload", "/nonexistent/file.mp4")
    assert r.returncode != 0 and "no such file" in r.stderr
    r = mpr.run(["--api-url", "http://127.0.0.1:9", "scan"], dict(os.environ))
    assert r.returncode != 0 and "cannot reach the API" in r.stderr


def test_cli_automation_and_control(mpr, s3, media_dir, tmp_path):
    """Templates, queue control, the event stream (exits when the job it follows ends), retry and the log."""
    prefix = f"cli-{uuid.uuid4().hex[:6]}/"
    s3.upload_file(str(media_dir / "sample.mp4"), "mpr-media-in", f"{prefix}sample.mp4")
    s3.upload_file(str(media_dir / "garbage.mp4"), "mpr-media-in", f"{prefix}broken.mp4")

    name = f"cli{uuid.uuid4().hex[:6]}"
    body = tmp_path / "t.json"
    body.write_text(json.dumps({"kind": "thumbnail", "preset": "png-640"}))
    assert mpr("templates", "put", name, "--file", str(body)).returncode == 0
    r = mpr("templates", "get", name)
    assert r.returncode == 0 and "png-640" in r.stdout, r.stdout + r.stderr

    r = mpr("pause", "bulk")
    assert r.returncode == 0, r.stderr
    r = mpr("queues")
    assert r.returncode == 0 and "bulk" in r.stdout
    assert mpr("resume", "bulk").returncode == 0

    job_id = f"cli-{uuid.uuid4().hex[:8]}"
    follower: dict = {}
    t = threading.Thread(target=lambda: follower.update(r=mpr("events", "--follow", "--job", job_id)))
    t.start()
    time.sleep(1.5)  # the stream is open before the job is submitted
    r = mpr("submit", "thumbnail", f"{prefix}sample.mp4", "--job-id", job_id, "--template", name)
    assert r.returncode == 0, r.stdout + r.stderr
    t.join(120)
    assert follower["r"].returncode == 0, follower["r"].stdout + follower["r"].stderr

    failing = f"cli-{uuid.uuid4().hex[:8]}"
    r = mpr("submit", "thumbnail", f"{prefix}broken.mp4", "--job-id", failing, "--watch")
    assert r.returncode == 1 and "failed" in r.stdout
    s3.upload_file(str(media_dir / "sample.mp4"), "mpr-media-in", f"{prefix}broken.mp4")
    r = mpr("retry", failing, "--watch")
    assert r.returncode == 0, r.stdout + r.stderr
    r = mpr("log", failing)
    assert r.returncode == 0 and "attempt 1" in r.stdout and "(retry 1)" in r.stdout, r.stdout


def test_cli_follow_of_an_ended_job_ends_and_ids_print_whole(mpr, s3, media_dir, tmp_path):
    """``events --follow --job`` of a job that ended before it started says how it ended and exits (it
    waited forever); piped, it prints lines, not bars; ``list jobs`` at 80 columns prints ids whole."""
    prefix = f"cli-{uuid.uuid4().hex[:6]}/"
    s3.upload_file(str(media_dir / "sample.mp4"), "mpr-media-in", f"{prefix}sample.mp4")
    job_id = f"cli-follow-{uuid.uuid4().hex}"  # longer than an 80-column table leaves for it
    r = mpr("submit", "thumbnail", f"{prefix}sample.mp4", "--job-id", job_id, "--watch")
    assert r.returncode == 0, r.stdout + r.stderr
    r = mpr("events", "--follow", "--job", job_id)
    assert r.returncode == 0 and f"job.completed {job_id} thumbnail completed 100%" in r.stdout, r.stdout

    r = mpr("list", "jobs", "--limit", "500", columns=80)
    assert r.returncode == 0 and job_id in r.stdout, r.stdout

    r = mpr("templates", "put", "web", "--file", str(tmp_path / "missing.json"))
    assert r.returncode == 2 and r.stderr.startswith("mpr: cannot read") and "Traceback" not in r.stderr
    r = mpr("pause", "bulk")
    assert r.returncode == 0 and r.stdout.strip() == "bulk paused", r.stdout
    assert mpr("resume", "bulk").stdout.strip() == "bulk resumed"
