"""The whole system on random loopback ports: real nats-server (JetStream), moto's S3 server,
SQLite, and the four services as separate processes."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from mpr_devstack.servers import free_port
from mpr_devstack.stack import DEV_API_TOKEN, Stack
from mpr_devstack.tcp_proxy import TcpProxy
from tests.media import make_audio, make_mkv, make_video

pytestmark = pytest.mark.system

FAST_RETRIES = {
    "TRANSCODER_ACK_WAIT": "6",
    "TRANSCODER_RETRY_BASE": "0.5",
    "TRANSCODER_RETRY_MAX": "4",
    "TRANSCODER_MAX_DELIVER": "4",
    "TRANSCODER_SHUTDOWN_GRACE": "10",
    # Every test client shares 127.0.0.1, and some send wrong credentials on purpose: the throttle on
    # guessing (tested on its own) must not lock the other tests out.
    "API_AUTH_FAILURES_PER_MINUTE": "600",
}


@pytest.fixture(scope="session")
def media_dir(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("media")
    make_video(d / "sample.mp4")
    make_mkv(d / "clip.mkv")
    make_audio(d / "tone.flac")
    data = (d / "sample.mp4").read_bytes()
    (d / "truncated.mp4").write_bytes(data[: len(data) // 3])
    (d / "garbage.mp4").write_bytes(bytes(range(256)) * 400)
    return d


@pytest.fixture(scope="session")
def stack(tmp_path_factory) -> Iterator[Stack]:
    st = Stack(tmp_path_factory.mktemp("stack"), transcoders=2, extra_env=FAST_RETRIES)
    try:
        st.start()
        yield st
    finally:
        st.stop()


@pytest.fixture(scope="session")
def api(stack: Stack) -> Iterator[httpx.Client]:
    with httpx.Client(
        base_url=stack.api_url, headers={"Authorization": f"Bearer {DEV_API_TOKEN}"}, timeout=60
    ) as client:
        yield client


@pytest.fixture(scope="session")
def s3(stack: Stack):
    return stack.s3_client()


def wait_for(fn: Callable[[], object], timeout: float = 60, interval: float = 0.25, what: str = "condition"):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = fn()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"timed out waiting for {what}; last value: {last!r}")


def wait_job(
    api: httpx.Client, job_id: str, timeout: float = 120, states=("completed", "failed", "cancelled")
) -> dict:
    def done():
        r = api.get(f"/api/jobs/{job_id}")
        if r.status_code == 200 and r.json()["job"]["status"] in states:
            return r.json()
        return None

    return wait_for(done, timeout, what=f"job {job_id} to reach {states}")


def _stack_maker(tmp_path_factory) -> Iterator[Callable[..., Stack]]:
    stacks: list[Stack] = []

    def make(transcoders: int = 1, s3_proxy: TcpProxy | None = None, **env: str) -> Stack:
        """A stack of its own; with ``s3_proxy``, every service reaches S3 only through that proxy."""
        if s3_proxy is not None:
            env = {"S3_ENDPOINT_URL": s3_proxy.url, **env}
        st = Stack(
            tmp_path_factory.mktemp("fault"),
            transcoders=transcoders,
            s3_port=s3_proxy.target[1] if s3_proxy else None,
            extra_env={**FAST_RETRIES, **env},
        )
        stacks.append(st)
        return st.start()

    yield make
    for st in stacks:
        st.stop()


@pytest.fixture
def make_stack(tmp_path_factory) -> Iterator[Callable[..., Stack]]:
    """Stacks for one test: for a fault that leaves a stack unfit for any other test."""
    yield from _stack_maker(tmp_path_factory)


@pytest.fixture(scope="module")
def make_shared_stack(tmp_path_factory) -> Iterator[Callable[..., Stack]]:
    """Stacks for every test of a module (a stack start costs more CPU than most tests): for faults
    that leave the stack healthy or are undone by the test (a replica restarted, a proxy switched back)."""
    yield from _stack_maker(tmp_path_factory)


@pytest.fixture(scope="module")
def shared_s3_proxy() -> Iterator[TcpProxy]:
    """A switchable TCP proxy in front of a module's (not yet started) S3 server; each test leaves it
    unblocked."""
    proxy = TcpProxy(free_port()).start()
    yield proxy
    proxy.stop()
