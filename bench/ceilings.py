"""Ceilings, measured in the same run as the MPR figures they bound: what the same machine does with
the bare tools (Litestar + uvicorn, nats-py + JetStream, moto, FFmpeg) and none of MPR's code."""

from __future__ import annotations

import asyncio
import json
import subprocess
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from mpr_common.events import JobRequested
from mpr_common.jobs import normalize_job
from mpr_common.mediainfo import NETWORK_PROTOCOLS, probe
from mpr_common.presets import PRESETS
from mpr_transcoder.kinds.single_output import build_plan

from .common import HEADERS, Rate, Server, median_rate, proc_cpu_s
from .loadgen import LoadResult, encode_post, run_async, run_load

BENCH_STREAM = "BENCH"
BENCH_SUBJECTS = "bench.>"


# --- HTTP: the same requests for the bare app and for MPR ---------------------------------------
def job_bodies(n: int, tag: str) -> list[bytes]:
    """``n`` distinct POST /api/jobs bodies (thumbnail jobs of distinct keys, no job_id: the API picks)."""
    return [
        json.dumps({"kind": "thumbnail", "source_key": f"load/{tag}-{i:06d}.mp4"}).encode() for i in range(n)
    ]


def job_requests(port: int, n: int, tag: str) -> list[bytes]:
    return [encode_post(port, "/api/jobs", body, HEADERS) for body in job_bodies(n, tag)]


def load_rate(res: LoadResult) -> Rate:
    bad = {s: n for s, n in res.statuses.items() if not 200 <= s < 300}
    note = f"non-2xx: {bad}" if bad else ""
    return Rate(res.requests, res.elapsed, res.latencies, "req", note)


def bare_litestar(
    n: int,
    concurrency: int,
    warmup: int,
    rounds: int = 1,
    nats_url: str | None = None,
    processes: int = 1,
    between: Callable[[int], object] | None = None,
) -> tuple[Rate, list[LoadResult]]:
    """(a) a bare Litestar POST route (msgspec Struct body → 202 JSON) under uvicorn, as the API runs;
    (b) with ``nats_url``: the same route also awaiting an acked JetStream publish per request.
    ``between(r)`` runs after round ``r`` (MPR's own round, so that each pair sees the same machine)."""
    env = {"BENCH_NATS_URL": nats_url, "BENCH_SUBJECT": "bench.bare"} if nats_url else {}
    runs, loads = [], []
    with Server("bench.bare_app", env) as srv:
        for r in range(rounds):
            cpu = proc_cpu_s(srv.popen.pid)
            res = run_load(
                srv.port,
                job_requests(srv.port, n, f"bare{r}"),
                concurrency,
                warmup=job_requests(srv.port, warmup, f"warm{r}") if warmup else None,
                processes=processes,
            )
            res.server_cpu_us = (proc_cpu_s(srv.popen.pid) - cpu) * 1e6 / res.ok_all_phases
            loads.append(res)
            runs.append(load_rate(res))
            if between is not None:
                between(r)
    return median_rate(runs), loads


# --- JetStream ----------------------------------------------------------------------------
async def _ensure_bench_stream(js) -> None:
    from nats.js.api import DiscardPolicy, RetentionPolicy, StorageType, StreamConfig

    # the same kind of stream as the jobs stream: file storage, de-duplication window, limits
    cfg = StreamConfig(
        name=BENCH_STREAM,
        subjects=[BENCH_SUBJECTS],
        storage=StorageType.FILE,
        num_replicas=1,
        discard=DiscardPolicy.OLD,
        retention=RetentionPolicy.LIMITS,
        duplicate_window=3600.0,
        max_age=3600.0,
    )
    try:
        await js.add_stream(cfg)
    except Exception:  # already there (a second round)
        await js.update_stream(cfg)


async def _prepare_bench_stream(nats_url: str) -> None:
    import nats

    nc = await nats.connect(nats_url, name="bench-setup")
    try:
        await _ensure_bench_stream(nc.jetstream())
    finally:
        await nc.drain()


def prepare_bench_stream(nats_url: str) -> None:
    """The stream the bare app (b) publishes to; made by the bench, not by MPR's setup."""
    asyncio.run(_prepare_bench_stream(nats_url))


async def _jetstream_publish(nats_url: str, n: int, concurrency: int) -> Rate:
    import nats

    nc = await nats.connect(nats_url, name="bench-publisher")
    js = nc.jetstream()
    await _ensure_bench_stream(js)
    payloads = job_bodies(n, "js")
    latencies: list[float] = []
    next_i = 0

    async def worker() -> None:
        nonlocal next_i
        while next_i < n:
            i, next_i = next_i, next_i + 1
            t0 = time.perf_counter()
            await js.publish("bench.raw", payloads[i], headers={"Nats-Msg-Id": uuid.uuid4().hex})
            latencies.append(time.perf_counter() - t0)

    try:
        t0 = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        return Rate(n, time.perf_counter() - t0, latencies, "msgs")
    finally:
        await nc.drain()


def jetstream_publish(nats_url: str, n: int, concurrency: int, rounds: int = 1) -> Rate:
    """(c) raw nats-py JetStream publishes, each awaiting its ack, ``concurrency`` at a time."""
    return median_rate([run_async(_jetstream_publish(nats_url, n, concurrency)) for _ in range(rounds)])


# --- S3 listing ---------------------------------------------------------------------------------
def moto_list(s3, bucket: str, prefix: str, expected: int, rounds: int = 1) -> Rate:
    """(d) moto's bare list_objects_v2 paging rate over the same objects (boto3 paginator, 1000/page)."""
    runs = []
    for _ in range(rounds):
        pages = s3.get_paginator("list_objects_v2").paginate(
            Bucket=bucket, Prefix=prefix, PaginationConfig={"PageSize": 1000}
        )
        count, latencies = 0, []
        t0 = last = time.perf_counter()
        for page in pages:
            now = time.perf_counter()
            latencies.append(now - last)
            last = now
            count += len(page.get("Contents", []))
        elapsed = time.perf_counter() - t0
        if count != expected:
            raise RuntimeError(f"listed {count} objects under {prefix!r}, expected {expected}")
        runs.append(
            Rate(
                count,
                elapsed,
                latencies,
                "objects",
                f"{len(latencies)} page{'s' if len(latencies) != 1 else ''}",
            )
        )
    return median_rate(runs)


# --- FFmpeg on a local file ---------------------------------------------------------------------
def local_args(job_body: dict, src: Path, out_dir: Path) -> list[str]:
    """The very FFmpeg arguments a transcoder builds for ``job_body``, on a local copy of the source."""
    job = normalize_job(JobRequested(job_id=f"raw-{uuid.uuid4().hex[:8]}", **job_body))
    info = asyncio.run(probe(str(src), protocols="file"))
    plan = build_plan(job, PRESETS[job.preset], str(src), info, out_dir, 50 * 1024**3)
    return [a if a != NETWORK_PROTOCOLS else "file" for a in plan.args]


def _run_ffmpeg(args: list[str]) -> float:
    t0 = time.perf_counter()
    subprocess.run(args, check=True, capture_output=True)
    return time.perf_counter() - t0


def ffmpeg_runs(job_body: dict, src: Path, work: Path, runs: int, parallel: int = 1) -> Rate:
    """(e) raw FFmpeg: ``runs`` commands, ``parallel`` at a time; count/s and per-command seconds."""
    arg_lists = [local_args(job_body, src, work / f"raw-{uuid.uuid4().hex[:8]}") for _ in range(runs)]
    t0 = time.perf_counter()
    with ThreadPoolExecutor(parallel) as pool:
        times = list(pool.map(_run_ffmpeg, arg_lists))
    return Rate(runs, time.perf_counter() - t0, times, "commands")
