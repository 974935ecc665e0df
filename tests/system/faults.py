"""Helpers for fault tests: a stack's API client, sample uploads and long jobs, outputs, events read
back from JetStream, and what a test changes on a stack it shares with others (transcoders it starts,
the job queue's settings). (The ``make_stack``/``make_shared_stack`` and ``shared_s3_proxy``
fixtures are in conftest.py.)"""

from __future__ import annotations

import asyncio
import json
import signal
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import nats
from nats.errors import TimeoutError as NatsTimeout

from mpr_common import subjects as s
from mpr_devstack.servers import Proc
from mpr_devstack.stack import DEV_API_TOKEN, Stack
from mpr_devstack.tcp_proxy import TcpProxy
from tests.media import make_video
from tests.system.conftest import wait_for


async def _stream_events(url: str, stream: str, subject: str) -> list[dict]:
    nc = await nats.connect(url)
    try:
        js = nc.jetstream()
        sub = await js.pull_subscribe(subject, stream=stream)
        out: list[dict] = []
        while True:
            try:
                msgs = await sub.fetch(256, timeout=1)
            except (TimeoutError, NatsTimeout):
                break
            for m in msgs:
                out.append({"subject": m.subject, "headers": dict(m.headers or {}), **json.loads(m.data)})
                await m.ack()
        await sub.unsubscribe()
        return out
    finally:
        await nc.close()


def stream_events(url: str, stream: str, subject: str) -> list[dict]:
    return asyncio.run(_stream_events(url, stream, subject))


async def _consumer_info(url: str, stream: str, durable: str):
    nc = await nats.connect(url)
    try:
        return await nc.jetstream().consumer_info(stream, durable)
    finally:
        await nc.close()


def consumer_info(url: str, stream: str, durable: str):
    return asyncio.run(_consumer_info(url, stream, durable))


async def _delete_consumer(url: str, stream: str, durable: str) -> None:
    nc = await nats.connect(url)
    try:
        await nc.jetstream().delete_consumer(stream, durable)
    finally:
        await nc.close()


def delete_consumer(url: str, stream: str, durable: str) -> None:
    asyncio.run(_delete_consumer(url, stream, durable))


async def _js_publish(url: str, subject: str, payload: bytes, msg_id: str) -> None:
    nc = await nats.connect(url)
    try:
        await nc.jetstream().publish(subject, payload, headers={"Nats-Msg-Id": msg_id})
    finally:
        await nc.close()


def js_publish(url: str, subject: str, payload: bytes, msg_id: str) -> None:
    asyncio.run(_js_publish(url, subject, payload, msg_id))


# --- a stack's API, media and outputs -----------------------------------------------------------
def client(st: Stack) -> httpx.Client:
    return httpx.Client(base_url=st.api_url, headers={"Authorization": f"Bearer {DEV_API_TOKEN}"}, timeout=60)


def upload_sample(st: Stack, media_dir, name: str = "sample.mp4") -> str:
    key = f"fault-{uuid.uuid4().hex[:6]}/{name}"
    st.s3_client().upload_file(str(media_dir / name), "mpr-media-in", key)
    return key


# The long job: a VP9 transcode of a small source (about a CPU-second of FFmpeg) that its transcoder reads
# from S3 over a slow link, so that it runs for this long whatever the machine's speed or load: long
# enough for a fault to strike while it runs.
LONG_JOB_SECONDS = 8
LONG_SOURCE = "long-job.mp4"


def long_source(media_dir: Path) -> Path:
    path = media_dir / LONG_SOURCE
    if not path.exists():
        make_video(path, seconds=12, size="320x180", rate=5)
    return path


@contextmanager
def slow_s3(st: Stack, media_dir: Path) -> Iterator[dict[str, str]]:
    """The environment of a transcoder that reaches S3 over a link that carries the long job's source in
    ``LONG_JOB_SECONDS`` (what it uploads, and short answers, pass at once)."""
    assert st.moto
    rate = long_source(media_dir).stat().st_size / LONG_JOB_SECONDS
    link = TcpProxy(st.moto.port, rate=rate).start()
    try:
        yield {"S3_ENDPOINT_URL": link.url}
    finally:
        link.stop()


def start_long_job(st: Stack, api: httpx.Client, media_dir: Path, wait_progress: bool = True) -> str:
    """The long job, for transcoders started with :func:`slow_s3`; by default, wait until it runs."""
    key = upload_sample(st, media_dir, long_source(media_dir).name)
    job_id = api.post(
        "/api/jobs", json={"kind": "transcode", "source_key": key, "preset": "vp9-720p"}
    ).json()["job"]["id"]
    if wait_progress:
        wait_for(
            lambda: api.get(f"/api/jobs/{job_id}").json()["job"]["progress"] > 0, what="job to make progress"
        )
    return job_id


def output_objects(st: Stack, job: dict) -> list[str]:
    prefix = job["output_key"].rsplit("/", 1)[0] + "/"
    resp = st.s3_client().list_objects_v2(Bucket="mpr-media-out", Prefix=prefix)
    return [o["Key"] for o in resp.get("Contents", [])]


def completed_events(st: Stack, job_id: str) -> list[dict]:
    return [e for e in stream_events(st.nats.url, s.JOBS_STREAM, s.JOB_COMPLETED) if e["job_id"] == job_id]


# --- what a test changes on a shared stack -------------------------------------------------------
class Replicas:
    """Transcoders one test starts on a shared stack (named by the test: log files and the ``worker``
    of its jobs are its own), stopped when the test ends."""

    def __init__(self, st: Stack) -> None:
        self.st = st
        self.started: list[Proc] = []

    def start(self, name: str, **env: str) -> Proc:
        assert name not in self.st.services, f"{name} already ran on this stack"
        proc = self.st.start_service("transcoder", name, env=env or None)
        self.started.append(proc)
        return proc

    def wait_ready(self, name: str, timeout: float = 120) -> None:
        """Until ``name`` answers ready (bound to its consumers), as a stack's own are after it starts."""
        url = f"http://127.0.0.1:{self.st.metrics_ports[name]}/health/ready"

        def ready() -> bool:
            try:
                return httpx.get(url, timeout=5).status_code == 200
            except httpx.HTTPError:  # not listening yet
                return False

        wait_for(ready, timeout, what=f"{name} to be ready")

    def stop(self) -> None:
        for proc in self.started:
            proc.signal(signal.SIGCONT)  # a test may have left one frozen
            proc.stop()


@contextmanager
def job_queue(st: Stack, **env: str) -> Iterator[None]:
    """The transcoders' consumer updated by its owner (mpr-setup, run again as a deployment would) with
    these settings (``TRANSCODER_ACK_WAIT``, ``TRANSCODER_MAX_DELIVER``), and the stack's own restored
    afterwards. Transcoders read them from the server when they start: start them inside."""
    saved = dict(st.extra_env)
    st.extra_env.update(env)
    try:
        st.setup_jetstream()
        yield
    finally:
        st.extra_env.clear()
        st.extra_env.update(saved)
        st.setup_jetstream()
