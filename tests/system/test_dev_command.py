"""The README's `make dev` command (mpr-dev): starts everything, prints the API URL and upload
commands that work on a machine without ~/.aws, serves the flow, and Ctrl-C (or SIGTERM) stops every
process it started, quietly and with status 0. A process that dies is restarted; a restart of mpr-dev
finds every object, asset and job it had.

Both tests share one fresh start (each start costs several CPU-seconds: six processes come up): the
newcomer's checks run on it first, then the restart test kills its processes, stops it with the
terminal's Ctrl-C and starts it again on the same work dir."""

from __future__ import annotations

import asyncio
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import boto3
import httpx
import nats
import pytest

from mpr_common.identities import inbox_prefix
from mpr_common.job_status import is_terminal
from mpr_common.settings import DEFAULT_BUCKET_IN, DEFAULT_BUCKET_OUT
from mpr_devstack.servers import free_port
from mpr_devstack.stack import DEV_ACCESS_KEY, DEV_API_TOKEN, DEV_SECRET_KEY

pytestmark = pytest.mark.system


def children_of(pid: int) -> set[int]:
    out = subprocess.run(["ps", "-o", "pid=", "--ppid", str(pid)], capture_output=True, text=True).stdout
    return {int(p) for p in out.split()}


def proc_file(pid: int, name: str) -> bytes:
    """``/proc/<pid>/<name>``, empty once the process is gone (a child listed a moment ago may have
    exited and been reaped since: the kill -9s below make that likely)."""
    try:
        return Path(f"/proc/{pid}/{name}").read_bytes()
    except (FileNotFoundError, ProcessLookupError):
        return b""


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    stat = Path(f"/proc/{pid}/stat")
    return stat.exists() and stat.read_text().split()[2] != "Z"


def start_mpr_dev(workdir: Path, ports: list[int] | None = None) -> tuple[subprocess.Popen, str]:
    """mpr-dev in a session of its own (as a shell starts it), and the banner it printed."""
    ports = ports or [free_port() for _ in range(3)]
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
    deadline = time.monotonic() + 300  # the stack waits up to START_TIMEOUT for its services
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


class Output:
    """What mpr-dev prints after its banner, read as it comes (restart lines)."""

    def __init__(self, proc: subprocess.Popen) -> None:
        self.proc = proc
        self.lines: list[str] = []
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line)

    def wait_line(self, text: str, timeout: float = 60) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = [line for line in self.lines if text in line]
            if found:
                return found[0]
            time.sleep(0.1)
        raise AssertionError(f"no line with {text!r} in {''.join(self.lines)!r}")

    def stop(self, sig: int = signal.SIGINT, *, group: bool = False) -> str:
        """Send ``sig`` (to the whole process group, as a terminal's Ctrl-C does, if ``group``) and
        check mpr-dev stops with 0 and without a traceback; everything it printed."""
        if group:
            os.killpg(self.proc.pid, sig)
        else:
            self.proc.send_signal(sig)
        rc = self.proc.wait(60)
        self.thread.join(10)
        rest = "".join(self.lines)
        assert rc == 0, rest
        assert "Traceback" not in rest, rest
        return rest


@dataclass
class DevRun:
    """mpr-dev started fresh, still running: what the tests need to use it, stop it and start it again."""

    workdir: Path
    ports: list[int]  # API, NATS, S3
    proc: subprocess.Popen
    banner: str
    out: Output


@pytest.fixture(scope="module")
def fresh_start(tmp_path_factory) -> Iterator[DevRun]:
    """One fresh mpr-dev for the module's tests, in test order: the newcomer's checks, then the restart
    test's kills, Ctrl-C and restart (which leave it stopped)."""
    workdir = tmp_path_factory.mktemp("mpr-dev") / "dev"
    ports = [free_port() for _ in range(3)]
    proc, banner = start_mpr_dev(workdir, ports)
    run = DevRun(workdir, ports, proc, banner, Output(proc))
    yield run
    if proc.poll() is None:  # a test failed before it stopped mpr-dev
        proc.send_signal(signal.SIGTERM)
        proc.wait(60)


def log_sizes(workdir: Path) -> dict[str, int]:
    return {log.name: log.stat().st_size for log in (workdir / "logs").glob("*.log")}


def tracebacks_in_logs(workdir: Path, since: dict[str, int] | None = None) -> list[str]:
    """The service logs with a traceback (in what each wrote after ``since``'s sizes, if given)."""
    found = []
    for log in (workdir / "logs").glob("*.log"):
        with log.open("rb") as f:
            f.seek((since or {}).get(log.name, 0))
            if b"Traceback" in f.read():
                found.append(log.name)
    return found


async def publish_job(url: str):
    nc = await nats.connect(url, inbox_prefix=inbox_prefix("publisher"))  # the only inbox it may read
    try:
        body = b'{"kind": "thumbnail", "source_key": "videos/a.mp4"}'
        return await nc.jetstream().publish(
            "mpr.jobs.requested", body, headers={"Nats-Msg-Id": "from-another-team"}
        )
    finally:
        await nc.close()


def test_mpr_dev_starts_everything_and_its_printed_commands_work(fresh_start, tmp_path, media_dir):
    """What a newcomer does with one `make dev`: the banner's API, token and publisher credential work,
    its upload commands work on a machine without ~/.aws, and no service logs a traceback. (Ctrl-C on
    the terminal, and SIGTERM: the restart test, which stops this same start.)"""
    proc, text = fresh_start.proc, fresh_start.banner
    api_url = re.search(r"API\s+(http://127\.0\.0\.1:\d+)", text).group(1)
    assert DEV_API_TOKEN in text
    r = httpx.post(
        f"{api_url}/api/assets/scan", headers={"Authorization": f"Bearer {DEV_API_TOKEN}"}, timeout=30
    )
    assert r.status_code == 200 and r.json()["found"] == 0  # buckets exist, empty
    # The printed publisher credential submits a job straight onto NATS, as another team would.
    publisher = re.search(r"publisher\s+(nats://publisher:\S+)", text).group(1)
    assert f'inbox_prefix="{inbox_prefix("publisher")}"' in text
    ack = asyncio.run(publish_job(publisher))
    assert ack.stream == "MPR_JOBS" and not ack.duplicate
    job = httpx.get(
        f"{api_url}/api/jobs/from-another-team",
        headers={"Authorization": f"Bearer {DEV_API_TOKEN}"},
        timeout=30,
    ).json()["job"]
    assert job["kind"] == "thumbnail" and job["source_key"] == "videos/a.mp4"
    assert len(children_of(proc.pid)) >= 6  # nats-server, moto, catalog, scanner, transcoder, api

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
    assert env["MPR_API_URL"] == api_url
    r = httpx.post(
        f"{env['MPR_API_URL']}/api/assets/scan",
        headers={"Authorization": f"Bearer {env['MPR_TOKEN']}"},
        timeout=30,
    )
    assert r.status_code == 200 and r.json()["files"] == expected, r.text
    assert not tracebacks_in_logs(fresh_start.workdir)


def child_running(parent: int, module: str) -> int:
    """The pid of mpr-dev's child process that runs ``module``."""
    for pid in children_of(parent):
        cmdline = proc_file(pid, "cmdline").split(b"\0")
        if module.encode() in cmdline:
            return pid
    raise AssertionError(f"no child runs {module}")


def run_job(api: httpx.Client, key: str) -> dict:
    """A thumbnail job to completion; submitted again (same job_id) while the API answers 503, as a
    client does while the broker restarts."""
    job_id = f"dev-{uuid.uuid4().hex[:8]}"
    deadline = time.monotonic() + 180
    while True:
        r = api.post("/api/jobs", json={"kind": "thumbnail", "source_key": key, "job_id": job_id})
        if r.status_code != 503 or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert r.status_code in (200, 202), r.text
    got: dict = {}
    while time.monotonic() < deadline:
        r = api.get(f"/api/jobs/{job_id}")
        if r.status_code == 503:  # the catalog or the broker still coming back: ask again
            time.sleep(0.5)
            continue
        assert r.status_code == 200, r.text
        got = r.json()
        if is_terminal(got["job"]["status"]):
            assert got["job"]["status"] == "completed", got
            return got
        time.sleep(0.25)
    raise AssertionError(f"job {job_id} did not end: {got}")


PREFIX = "restart/"  # where the restart test puts its source


def dev_s3(port: int):
    return boto3.client(
        "s3",
        endpoint_url=f"http://127.0.0.1:{port}",
        aws_access_key_id=DEV_ACCESS_KEY,
        aws_secret_access_key=DEV_SECRET_KEY,
        region_name="us-east-1",
    )


def dev_api(port: int, **kwargs) -> httpx.Client:
    headers = {"Authorization": f"Bearer {DEV_API_TOKEN}"}
    return httpx.Client(base_url=f"http://127.0.0.1:{port}", headers=headers, timeout=60, **kwargs)


def etags(s3) -> dict[tuple[str, str], str]:
    """Every object of both buckets: (bucket, key) -> ETag."""
    return {
        (b, o["Key"]): o["ETag"]
        for b in (DEFAULT_BUCKET_IN, DEFAULT_BUCKET_OUT)
        for o in s3.list_objects_v2(Bucket=b).get("Contents", [])
    }


def assert_all_gone(pids: set[int], after: str) -> None:
    time.sleep(0.5)
    assert not [p for p in pids if alive(p)], f"processes left running after {after}"


def kill_transcoder_s3_and_broker(proc: subprocess.Popen, out: Output) -> None:
    """kill -9 of each, and the terminal line saying it is restarted."""
    os.kill(child_running(proc.pid, "mpr_transcoder"), signal.SIGKILL)
    os.kill(child_running(proc.pid, "mpr_devstack.s3_server"), signal.SIGKILL)
    nats_pid = next(p for p in children_of(proc.pid) if b"nats-server" in proc_file(p, "comm"))
    os.kill(nats_pid, signal.SIGKILL)
    out.wait_line("transcoder-1 exited (signal 9); restarting in 1 s")
    out.wait_line("s3 exited (signal 9); restarting in 1 s")
    out.wait_line("nats-server exited (signal 9); restarting in 1 s")


@dataclass
class FirstRun:
    jobs: list[dict]  # completed, before and after the kills
    objects: dict[tuple[str, str], str]
    asset: dict


def jobs_complete_across_kills(
    proc: subprocess.Popen, out: Output, api: httpx.Client, s3, source: Path, key: str
) -> FirstRun:
    """An asset registered and a job run, the transcoder, the S3 server and the broker killed, and a
    job run again: the stack goes on (JetStream and the S3 objects are on disk)."""
    s3.upload_file(str(source), DEFAULT_BUCKET_IN, key)
    assert api.post("/api/assets/scan", json={"prefix": PREFIX}).json()["registered"] == 1
    first = run_job(api, key)
    kill_transcoder_s3_and_broker(proc, out)
    second = run_job(api, key)  # the restarted transcoder, broker and S3 (the source is back)
    objects = etags(s3)
    assert (DEFAULT_BUCKET_IN, key) in objects
    assert (DEFAULT_BUCKET_OUT, first["job"]["output_key"]) in objects
    asset = api.get("/api/assets", params={"prefix": PREFIX}).json()["items"][0]
    return FirstRun([first, second], objects, asset)


def ctrl_c_on_the_terminal(run: DevRun) -> tuple[set[int], str]:
    """Its processes (the restarted ones included) and what it printed once the terminal's Ctrl-C (a
    SIGINT to its whole process group) stopped it; the services shut down in order, not killed along
    with nats-server and moto: no service logs a traceback meanwhile."""
    running = children_of(run.proc.pid)
    shown = len(run.out.lines)
    logged = log_sizes(run.workdir)
    run.out.stop(signal.SIGINT, group=True)
    assert not tracebacks_in_logs(run.workdir, since=logged)
    return running, "".join(run.out.lines[shown:])


def check_everything_kept(api: httpx.Client, run: FirstRun, source: Path, key: str) -> None:
    """The asset (same id and ETag, the catalog's identity of it), its source and the jobs' outputs
    with the same ETags, their links answering."""
    again = api.get("/api/assets", params={"prefix": PREFIX}).json()["items"]
    assert [(a["id"], a["etag"]) for a in again] == [(run.asset["id"], run.asset["etag"])]
    r = api.get(f"/media/in/{key}")
    assert r.status_code == 200 and r.content == source.read_bytes()
    for job in run.jobs:
        got = api.get(f"/api/jobs/{job['job']['id']}").json()
        r = httpx.get(got["output_url"], timeout=60)
        assert r.status_code == 200, r.text
        assert r.headers["etag"] == run.objects[(DEFAULT_BUCKET_OUT, job["job"]["output_key"])]


def test_restart_keeps_every_object_and_a_killed_process_is_restarted(fresh_start, media_dir):
    """(1) kill -9 a transcoder, the S3 server and nats-server: each is restarted with a line on the
    terminal, the stack keeps running and a job submitted afterwards completes; (2) Ctrl-C on the
    terminal (the whole process group: every process stops, quietly; what it sends mpr-dev alone, as its
    children run in process groups of their own) and start again on the same work dir and ports: the
    asset's source and the jobs' outputs are still there with the same ETags (the catalog's identity of
    an asset), their links answer, and a new job on the old asset completes; (3) SIGTERM stops it
    quietly, leaving no process behind."""
    workdir, ports, proc = fresh_start.workdir, fresh_start.ports, fresh_start.proc
    source, key = media_dir / "sample.mp4", f"{PREFIX}sample.mp4"
    s3 = dev_s3(ports[2])
    assert f"fresh start in {workdir}" in fresh_start.banner
    try:
        with dev_api(ports[0]) as api:
            run = jobs_complete_across_kills(proc, fresh_start.out, api, s3, source, key)
    finally:
        running, after_ctrl_c = ctrl_c_on_the_terminal(fresh_start)
    assert "stopping" in after_ctrl_c and "exited with" not in after_ctrl_c, after_ctrl_c
    assert_all_gone(running, "Ctrl-C")
    assert (workdir / "catalog.db").exists() and (workdir / "jetstream").is_dir()

    proc, text = start_mpr_dev(workdir, ports)
    out = Output(proc)
    started = children_of(proc.pid)
    try:
        assert f"kept from the last run in {workdir}: {len(run.objects)} S3 objects" in text, text
        assert etags(s3) == run.objects
        with dev_api(ports[0], follow_redirects=True) as api:
            check_everything_kept(api, run, source, key)
            third = run_job(api, key)  # a new job on the old asset
            assert third["job"]["output_key"]
        assert "exited" not in "".join(out.lines)
    finally:
        rest = out.stop(signal.SIGTERM)  # kill: stops as quietly as Ctrl-C
    assert "stopping" in rest and "exited" not in rest
    assert_all_gone(started, "SIGTERM")
