"""The README's `make dev` command (mpr-dev): starts everything, prints the API URL and upload
commands that work on a machine without ~/.aws, serves the flow, and Ctrl-C (or SIGTERM) stops every
process it started, quietly and with status 0."""

from __future__ import annotations

import asyncio
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import nats
import pytest

from mpr_devstack.servers import free_port
from mpr_devstack.stack import DEV_API_TOKEN

pytestmark = pytest.mark.system


def children_of(pid: int) -> set[int]:
    out = subprocess.run(["ps", "-o", "pid=", "--ppid", str(pid)], capture_output=True, text=True).stdout
    return {int(p) for p in out.split()}


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    stat = Path(f"/proc/{pid}/stat")
    return stat.exists() and stat.read_text().split()[2] != "Z"


def start_mpr_dev(workdir: Path) -> tuple[subprocess.Popen, str]:
    """mpr-dev in a session of its own (as a shell starts it), and the banner it printed."""
    ports = [free_port() for _ in range(3)]
    proc = subprocess.Popen(
        [
            str(Path(sys.executable).parent / "mpr-dev"),
            "--workdir",
            str(workdir),
            "--api-port",
            str(ports[0]),
            "--nats-port",
            str(ports[1]),
            "--s3-port",
            str(ports[2]),
            "--transcoders",
            "1",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    lines: list[str] = []
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            proc.kill()
            pytest.fail("mpr-dev exited: " + "".join(lines))
        lines.append(line)
        if "Ctrl-C stops everything" in line:
            break
    text = "".join(lines)
    assert re.search(r"API\s+http://127\.0\.0\.1:(\d+)", text).group(1) == str(ports[0])
    return proc, text


def stop_quietly(proc: subprocess.Popen, sig: int, *, group: bool = False) -> str:
    """Send ``sig`` (to the whole process group, as a terminal's Ctrl-C does, if ``group``) and
    check mpr-dev stops with 0 and without a traceback or a "service exited" complaint."""
    if group:
        os.killpg(proc.pid, sig)
    else:
        proc.send_signal(sig)
    rest = proc.stdout.read()  # until mpr-dev exits
    rc = proc.wait(60)
    assert rc == 0, rest
    assert "Traceback" not in rest and "exited with" not in rest, rest
    assert "stopping" in rest
    return rest


async def publish_job(url: str):
    nc = await nats.connect(url)
    try:
        body = b'{"kind": "thumbnail", "source_key": "videos/a.mp4"}'
        return await nc.jetstream().publish(
            "mpr.jobs.requested", body, headers={"Nats-Msg-Id": "from-another-team"}
        )
    finally:
        await nc.close()


def test_mpr_dev_starts_everything_and_ctrl_c_stops_it(tmp_path):
    proc, text = start_mpr_dev(tmp_path / "dev")
    started: set[int] = set()
    try:
        api_url = re.search(r"API\s+(http://127\.0\.0\.1:\d+)", text).group(1)
        assert DEV_API_TOKEN in text
        r = httpx.post(
            f"{api_url}/api/assets/scan", headers={"Authorization": f"Bearer {DEV_API_TOKEN}"}, timeout=30
        )
        assert r.status_code == 200 and r.json()["found"] == 0  # buckets exist, empty
        # The printed publisher credential submits a job straight onto NATS, as another team would.
        publisher = re.search(r"publisher\s+(nats://publisher:\S+)", text).group(1)
        ack = asyncio.run(publish_job(publisher))
        assert ack.stream == "MPR_JOBS" and not ack.duplicate
        job = httpx.get(
            f"{api_url}/api/jobs/from-another-team",
            headers={"Authorization": f"Bearer {DEV_API_TOKEN}"},
            timeout=30,
        ).json()["job"]
        assert job["kind"] == "thumbnail" and job["source_key"] == "videos/a.mp4"
        started = children_of(proc.pid)
        assert len(started) >= 6  # nats-server, moto, catalog, scanner, transcoder, api
    finally:
        stop_quietly(proc, signal.SIGINT)  # Ctrl-C (kill -INT)
    time.sleep(0.5)
    assert not [p for p in started if alive(p)], "processes left running after Ctrl-C"
    assert (tmp_path / "dev" / "catalog.db").exists() and (tmp_path / "dev" / "jetstream").is_dir()


def test_printed_upload_commands_work_without_aws_config_and_terminal_ctrl_c_is_quiet(tmp_path, media_dir):
    workdir = tmp_path / "dev"
    proc, text = start_mpr_dev(workdir)
    started: set[int] = set()
    try:
        started = children_of(proc.pid)
        # A fresh machine: no AWS variables, no ~/.aws; only what the banner's export line sets.
        clean = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "S3_", "MPR_"))}
        clean["HOME"] = str(tmp_path / "home")
        export = re.search(r"^\s*upload\s+export (.+)$", text, re.M).group(1)
        env = {**clean, **dict(kv.split("=", 1) for kv in shlex.split(export))}
        video = tmp_path / "video.mp4"
        shutil.copy(media_dir / "sample.mp4", video)
        upload = re.search(r"^\s*(uv run mpr upload video\.mp4)", text, re.M).group(1)
        mpr = str(Path(sys.executable).parent / "mpr")  # `uv run mpr` in this environment
        cmd = [mpr, *shlex.split(upload)[3:]]
        r = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60)
        assert r.returncode == 0, r.stdout + r.stderr
        expected = ["video.mp4"]
        if shutil.which("aws"):  # the AWS CLI line too, where the CLI is installed
            aws = re.search(r"^\s*(aws --endpoint-url .+)$", text, re.M).group(1)
            aws = aws.replace("video.mp4", "video2.mp4")
            shutil.copy(video, tmp_path / "video2.mp4")
            r = subprocess.run(
                shlex.split(aws), cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120
            )
            assert r.returncode == 0, r.stdout + r.stderr
            expected.append("video2.mp4")
        r = httpx.post(
            f"{env['MPR_API_URL']}/api/assets/scan",
            headers={"Authorization": f"Bearer {env['MPR_TOKEN']}"},
            timeout=30,
        )
        assert r.status_code == 200 and r.json()["files"] == expected, r.text
    finally:
        stop_quietly(proc, signal.SIGINT, group=True)  # Ctrl-C on a terminal: the whole group
    time.sleep(0.5)
    assert not [p for p in started if alive(p)], "processes left running after Ctrl-C"
    # The services shut down in order (not killed by the terminal along with nats-server and moto).
    for log in (workdir / "logs").glob("*.log"):
        assert "Traceback" not in log.read_text(errors="replace"), log.name


def test_sigterm_stops_quietly(tmp_path):
    proc, _ = start_mpr_dev(tmp_path / "dev")
    started = children_of(proc.pid)
    stop_quietly(proc, signal.SIGTERM)
    time.sleep(0.5)
    assert not [p for p in started if alive(p)], "processes left running after SIGTERM"
