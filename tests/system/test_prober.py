"""The catalog's prober: an unreachable S3 defers the probe (asset stays pending), bad media is an error
with a readable reason (never the presigned URL), an empty object is not probed."""

from __future__ import annotations

import asyncio
import contextlib

import pytest

from mpr_catalog.models import Asset
from mpr_catalog.prober import EMPTY_OBJECT_ERROR, Prober, readable_probe_error
from mpr_common.settings import S3Settings
from mpr_common.storage import get_s3_client
from mpr_devstack.servers import MotoServer, free_port

pytestmark = pytest.mark.system


async def test_unreachable_s3_defers_instead_of_failing():
    s3 = get_s3_client(
        S3Settings(endpoint_url=f"http://127.0.0.1:{free_port()}", access_key_id="a", secret_access_key="b")
    )
    done: list = []

    async def on_done(asset, info, error):
        done.append((asset.id, info, error))

    prober = Prober(s3, on_done, concurrency=1, timeout=10, retry_delay=0.1)
    attempts = 0
    real_probe = prober.probe

    retried = asyncio.Event()

    async def counting(asset):
        nonlocal attempts
        attempts += 1
        if attempts >= 2:
            retried.set()
        return await real_probe(asset)

    prober.probe = counting
    prober.start()
    prober.submit(Asset(id="a" * 32, bucket="mpr-media-in", key="x.mp4", etag="e", size=1))
    with contextlib.suppress(TimeoutError):  # a loaded machine may take seconds for one refused attempt
        await asyncio.wait_for(retried.wait(), 15)
    await prober.stop()
    assert attempts >= 2 and done == []  # retried, never recorded as a probe error


async def test_bad_media_is_a_probe_error():
    server = MotoServer().start()
    try:
        s3 = get_s3_client(S3Settings(endpoint_url=server.url, access_key_id="a", secret_access_key="b"))
        s3.create_bucket(Bucket="probe-in")
        s3.put_object(Bucket="probe-in", Key="bad.mp4", Body=b"\x00" * 2048)
        done: list = []

        async def on_done(asset, info, error):
            done.append((info, error))

        prober = Prober(s3, on_done, concurrency=1, timeout=10)
        prober.start()
        prober.submit(Asset(id="b" * 32, bucket="probe-in", key="bad.mp4", etag="e", size=2048))
        for _ in range(100):
            if done:
                break
            await asyncio.sleep(0.05)
        await prober.stop()
        ((info, error),) = done
        assert info is None and error
        assert "http" not in error and "X-Amz" not in error, error  # no presigned URL
    finally:
        server.stop()


async def test_empty_object_is_an_error_without_ffprobe(monkeypatch):
    async def no_ffprobe(*args, **kwargs):
        raise AssertionError("ffprobe ran on an empty object")

    monkeypatch.setattr("mpr_catalog.prober.probe", no_ffprobe)
    prober = Prober(None, None)  # neither S3 nor the callback is needed
    asset = Asset(id="c" * 32, bucket="probe-in", key="empty.mp4", etag="e", size=0)
    assert await prober.probe(asset) == (None, EMPTY_OBJECT_ERROR)


async def test_http_error_reads_as_a_status_without_the_url():
    """An object recorded with a size that is now empty: S3 answers ffprobe's range request with
    416, which ffprobe words as "Server returned 4XX Client Error, but not one of 40{0,1,3,4}"."""
    server = MotoServer().start()
    try:
        s3 = get_s3_client(S3Settings(endpoint_url=server.url, access_key_id="a", secret_access_key="b"))
        s3.create_bucket(Bucket="probe-in")
        s3.put_object(Bucket="probe-in", Key="gone.mp4", Body=b"")

        async def on_done(asset, info, error):
            raise AssertionError("not used")

        prober = Prober(s3, on_done, timeout=10)
        asset = Asset(id="d" * 32, bucket="probe-in", key="gone.mp4", etag="e", size=1)
        assert await prober.probe(asset) == (None, "the storage answered HTTP 4xx")
    finally:
        server.stop()


def test_readable_probe_error():
    url = (
        "http://127.0.0.1:9000/mpr-media-in/a%20b.mp4?X-Amz-Algorithm=AWS4-HMAC-SHA256"
        "&X-Amz-Credential=minioadmin%2F20260101%2Fus-east-1%2Fs3%2Faws4_request&X-Amz-Signature=abc"
    )
    assert readable_probe_error(f"{url}: Server returned 4XX Client Error, but not one of 40{{0,1,3,4}}") == (
        "the storage answered HTTP 4xx"
    )
    assert readable_probe_error(f"{url}: Server returned 404 Not Found") == "the storage answered HTTP 404"
    assert readable_probe_error(f"{url}: Invalid data found when processing input") == (
        "Invalid data found when processing input"
    )
    assert readable_probe_error("no audio or video stream found") == "no audio or video stream found"


async def test_the_queue_is_bounded_and_refilled_from_the_database():
    """A large scan never holds every new asset in memory: what does not fit stays pending and is
    loaded again when the queue runs low."""
    from mpr_catalog.ingest import NewAsset as A

    pending = {
        f"{i:032x}": A(id=f"{i:032x}", bucket="b", key=f"k{i}.mp4", etag="e", size=0) for i in range(25)
    }
    done: list[str] = []

    async def on_done(asset, info, error) -> None:
        done.append(asset.id)
        pending.pop(asset.id, None)  # what the catalog's set_probe_result does

    async def refill(limit: int, skip: frozenset[str]):
        return [a for aid, a in sorted(pending.items()) if aid not in skip][:limit]

    prober = Prober(None, on_done, concurrency=2, timeout=5, refill=refill, max_queued=4)
    for a in list(pending.values()):
        prober.submit(a)
    assert prober.queue.qsize() == 4  # the rest stays in the database
    prober.start()
    for _ in range(100):
        if len(done) == 25:
            break
        await asyncio.sleep(0.02)
    await prober.stop()
    assert sorted(done) == sorted(f"{i:032x}" for i in range(25)) and len(set(done)) == 25


# --- width and batches ----------------------------------------------------------------------------------


def test_the_default_width_follows_the_cores(monkeypatch):
    from mpr_catalog import settings as cs

    default = cs.CatalogSettings.from_env({}).probe_concurrency
    assert default == cs.default_probe_concurrency() == min(64, max(4, 4 * cs.usable_cores()))
    assert default > 2  # the old fixed default: 1,000 objects took 325 s on 2 cores
    assert cs.CatalogSettings.from_env({"CATALOG_PROBE_CONCURRENCY": "3"}).probe_concurrency == 3
    assert Prober(None, lambda *a: None).concurrency == default
    monkeypatch.setattr(cs, "usable_cores", lambda: 6)
    assert cs.default_probe_concurrency() == 24
    monkeypatch.setattr(cs, "usable_cores", lambda: 96)
    assert cs.default_probe_concurrency() == cs.MAX_PROBE_CONCURRENCY


def test_a_cpu_quota_bounds_the_cores(tmp_path, monkeypatch):
    from mpr_catalog import settings as cs

    v2 = tmp_path / "cpu.max"
    v1 = (tmp_path / "quota", tmp_path / "period")
    assert cs.cpu_quota(v2, v1) is None  # no cgroup files: no quota
    v2.write_text("max 100000\n")
    assert cs.cpu_quota(v2, v1) is None
    v2.write_text("150000 100000\n")
    assert cs.cpu_quota(v2, v1) == 1.5
    v2.unlink()
    v1[0].write_text("-1\n")
    v1[1].write_text("100000\n")
    assert cs.cpu_quota(v2, v1) is None
    v1[0].write_text("300000\n")
    assert cs.cpu_quota(v2, v1) == 3.0
    monkeypatch.setattr(cs, "cpu_quota", lambda: 1.5)  # a 1.5-CPU limit on a large node: 2 cores
    assert cs.usable_cores() == min(2, len(__import__("os").sched_getaffinity(0)))


def fake_assets(n: int):
    from mpr_catalog.ingest import NewAsset

    return [NewAsset(id=f"{i:032x}", bucket="b", key=f"k{i}.mp4", etag="e", size=100) for i in range(n)]


async def test_probes_run_side_by_side_and_results_are_recorded_in_batches(monkeypatch):
    from mpr_common.events import MediaInfo

    running = peak = 0

    async def slow_probe(url, **kw):  # an ffprobe waiting on S3
        nonlocal running, peak
        running += 1
        peak = max(peak, running)
        await asyncio.sleep(0.05)
        running -= 1
        return MediaInfo(duration=1.0)

    monkeypatch.setattr("mpr_catalog.prober.probe", slow_probe)
    monkeypatch.setattr("mpr_catalog.prober.get_presigned_url", lambda *a, **kw: "http://s3/x")
    batches: list[list] = []
    all_done = asyncio.Event()

    async def on_batch(results) -> None:
        batches.append(results)
        await asyncio.sleep(0.1)  # a slow database: probing goes on meanwhile
        if sum(map(len, batches)) == 48:
            all_done.set()

    prober = Prober(None, None, concurrency=8, on_batch=on_batch)
    prober.start()
    for a in fake_assets(48):
        prober.submit(a)
    await asyncio.wait_for(all_done.wait(), 30)
    await prober.stop()
    recorded = [r.asset.id for b in batches for r in b]
    assert sorted(recorded) == [a.id for a in fake_assets(48)]  # each once
    assert all(r.info == MediaInfo(duration=1.0) and r.error is None for b in batches for r in b)
    assert peak == prober.peak_running == 8
    assert len(batches) < 48 / 2, [len(b) for b in batches]  # many results per transaction
    assert prober._queued == set()


async def test_a_failed_batch_leaves_its_assets_to_the_next_start(monkeypatch):
    from mpr_common.events import MediaInfo

    async def quick_probe(url, **kw):
        return MediaInfo(duration=1.0)

    monkeypatch.setattr("mpr_catalog.prober.probe", quick_probe)
    monkeypatch.setattr("mpr_catalog.prober.get_presigned_url", lambda *a, **kw: "http://s3/x")
    calls: list[int] = []

    async def failing(results) -> None:
        calls.append(len(results))
        raise RuntimeError("database gone")

    prober = Prober(None, None, concurrency=2, on_batch=failing)
    prober.start()
    for a in fake_assets(5):
        prober.submit(a)
    for _ in range(200):
        if sum(calls) == 5 and not prober._queued:
            break
        await asyncio.sleep(0.02)
    await prober.stop()
    assert sum(calls) == 5 and prober._queued == set()  # not lost in memory: pending in the database
