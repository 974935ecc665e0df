"""The MPR figures, through the public HTTP API only (so that they keep working while the services
change): POST /api/jobs until the catalog has every job, scan + register until the catalog has every
object, transcode, thumbnails, and the bytes a trim reads from S3."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

import httpx

from mpr_common.mediainfo import probe
from mpr_common.presets import PRESETS
from mpr_devstack.servers import free_port
from mpr_devstack.stack import Stack
from mpr_devstack.tcp_proxy import TcpProxy
from mpr_transcoder.ffmpeg import run_ffmpeg
from mpr_transcoder.kinds.trim.smart_cut import smart_trim

from .ceilings import ffmpeg_runs, job_requests, load_rate, moto_list
from .common import (
    Rate,
    RssSampler,
    api_client,
    make_source,
    median_rate,
    page_total,
    proc_cpu_s,
    run_job,
    run_jobs,
    s3_client,
)
from .loadgen import run_load


def _wait_total(
    api: httpx.Client, path: str, target: int, deadline: float, exact: bool = False, failed=lambda: False
) -> dict:
    """Poll ``path`` (a list endpoint with ``total``) until total reaches ``target``; give up at
    ``deadline``, or 10 s after ``failed()`` turned true with no progress meanwhile."""
    errors = 0
    total = last = None
    last_change = time.monotonic()
    while time.monotonic() < deadline:
        try:
            total = page_total(api, path)
        except httpx.HTTPError:
            total = None
        if total is None:
            errors += 1
        elif total == target or (not exact and total >= target):
            return {"caught_up": True, "at": time.perf_counter(), "total": total, "errors": errors}
        if total != last:
            last, last_change = total, time.monotonic()
        elif failed() and time.monotonic() - last_change > 10:
            break
        time.sleep(0.05)
    return {"caught_up": False, "at": time.perf_counter(), "total": total, "errors": errors}


# --- (a) POST /api/jobs --------------------------------------------------------------------------
def post_jobs(st: Stack, n: int, concurrency: int, warmup: int, processes: int = 1) -> dict:
    """``n`` POSTs, ``concurrency`` at a time (the same load generator as the bare ceiling), then wait
    until ``GET /api/jobs?limit=1`` counts every job."""
    api = api_client(st.api_url)
    port = st.api_port
    assert port is not None
    before = page_total(api, "/api/jobs?limit=1") or 0
    pids = {name: st.services[name].popen.pid for name in ("api", "catalog")}
    cpu = {name: proc_cpu_s(pid) for name, pid in pids.items()}
    res = run_load(
        port,
        job_requests(port, n, "mpr"),
        concurrency,
        warmup=job_requests(port, warmup, "mprwarm") if warmup else None,
        processes=processes,
    )
    res.server_cpu_us = (proc_cpu_s(pids["api"]) - cpu["api"]) * 1e6 / res.ok_all_phases
    expected = before + res.ok_all_phases
    done = _wait_total(api, "/api/jobs?limit=1", expected, time.monotonic() + max(60.0, n / 100))
    # the catalog's, until it had recorded every job (less the polls of GET /api/jobs meanwhile: a few)
    catalog_cpu_us = (proc_cpu_s(pids["catalog"]) - cpu["catalog"]) * 1e6 / res.ok_all_phases
    post = load_rate(res)
    caught = Rate(n, done["at"] - res.started, [], "req")
    return {
        "post": post,
        "caught_up": caught,
        "catalog": done,
        "expected": expected,
        "lag_s": done["at"] - res.ended,
        "load": res,
        "catalog_cpu_us": catalog_cpu_us,
    }


def median_round(rounds: list[dict]) -> dict:
    """The round with the median POST rate, noting every round's rate and its bare round's."""
    mid = sorted(rounds, key=lambda a: a["post"].per_s)[len(rounds) // 2]
    if len(rounds) > 1:
        spread = ", ".join(f"{a['post'].per_s:,.0f}" for a in rounds)
        mid["post"].note = (mid["post"].note + "; " if mid["post"].note else "") + (
            f"median of {len(rounds)} runs, each right after a bare run: {spread}"
        )
    return mid


# --- (b) scan + register -------------------------------------------------------------------------
def upload_many(st: Stack, n: int, prefix: str = "many/") -> float:
    s3 = s3_client(st)
    t0 = time.perf_counter()
    with ThreadPoolExecutor(16) as pool:
        list(
            pool.map(
                lambda i: s3.put_object(Bucket=st.bucket_in, Key=f"{prefix}{i:06d}.mp4", Body=b"x"), range(n)
            )
        )
    return time.perf_counter() - t0


def scan(st: Stack, n: int, ceiling_rounds: int) -> dict:
    """Upload ``n`` tiny objects, measure moto's bare listing of them (the ceiling), then
    ``POST /api/assets/scan`` and wait until ``GET /api/assets?prefix=many/`` counts all ``n``;
    peak RSS of the catalog, scanner and API meanwhile."""
    upload_s = upload_many(st, n)
    ceiling = moto_list(s3_client(st), st.bucket_in, "many/", n, ceiling_rounds)
    api = api_client(st.api_url)
    pids = {
        name: st.services[name].popen.pid for name in ("catalog", "scanner", "api") if name in st.services
    }
    post: dict = {}
    timeout = max(120.0, n / 100)

    def do_post() -> None:
        t0 = time.perf_counter()
        try:
            with api_client(st.api_url, timeout=timeout) as c:
                r = c.post("/api/assets/scan", json={"prefix": "many/"})
            post["status"] = r.status_code
        except httpx.TimeoutException:
            post["status"] = "timeout"
        except httpx.HTTPError as exc:
            post["status"] = type(exc).__name__
        post["seconds"] = time.perf_counter() - t0

    sampler = RssSampler(pids)
    t0 = time.perf_counter()
    poster = threading.Thread(target=do_post, daemon=True)
    poster.start()
    done = _wait_total(
        api,
        "/api/assets?limit=1&prefix=many/",
        n,
        time.monotonic() + timeout,
        exact=True,
        failed=lambda: "status" in post and post["status"] not in (200, 201, 202),
    )
    poster.join(timeout)
    memory = sampler.stop()
    return {
        "objects": n,
        "upload_s": upload_s,
        "rate": Rate(n, done["at"] - t0, [], "objects"),
        "catalog": done,
        "post": post,
        "ceiling": ceiling,
        "memory": memory,
    }


# --- (c) transcode, (d) thumbnails --------------------------------------------------------------
def register(api: httpx.Client, key: str, timeout: float = 60) -> None:
    """Scan the source in and wait for the catalog's probe, as media is in production before jobs
    name it (a notification or a scan registers it): the transcoder then reuses that probe."""
    prefix = key.rsplit("/", 1)[0] + "/"
    assert api.post("/api/assets/scan", json={"prefix": prefix}).status_code == 200
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        items = api.get("/api/assets", params={"prefix": key}).json()["items"]
        if items and items[0]["probe_status"] != "pending":
            return
        time.sleep(0.1)
    raise TimeoutError(f"{key} was not probed")


def transcode(st: Stack, work: Path, seconds: int, runs: int, size: str = "1280x720", fps: int = 25) -> dict:
    src = make_source(work / "t.mp4", seconds, size, "4M", fps)
    s3_client(st).upload_file(str(src), st.bucket_in, "bench/t.mp4")
    body = {"kind": "transcode", "source_key": "bench/t.mp4", "preset": "h264-720p"}
    api = api_client(st.api_url)
    register(api, "bench/t.mp4")
    raw_times, times = [], []
    for _ in range(runs):  # in pairs: the shared machine's speed drifts, a pair sees the same speed
        raw_times += ffmpeg_runs(body, src, work, 1).latencies
        times.append(run_job(api, body))
    return {
        "source": f"{seconds} s {size} H.264 4 Mb/s → h264-720p",
        "runs": runs,
        "mpr": Rate(runs, sum(times), times, "jobs"),
        "raw": Rate(runs, sum(raw_times), raw_times, "commands"),
    }


def thumbnails(
    st: Stack,
    work: Path,
    n: int,
    transcoders: int,
    raw_rounds: int = 1,
    seconds: int = 10,
    size: str = "1280x720",
    fps: int = 25,
) -> dict:
    src = make_source(work / "thumb.mp4", seconds, size, "4M", fps)
    s3_client(st).upload_file(str(src), st.bucket_in, "bench/thumb.mp4")
    body = {"kind": "thumbnail", "source_key": "bench/thumb.mp4"}
    raw = median_rate([ffmpeg_runs(body, src, work, n, parallel=transcoders) for _ in range(raw_rounds)])
    api = api_client(st.api_url)
    register(api, "bench/thumb.mp4")
    _, latencies = run_jobs(api, [body] * n)
    return {
        "jobs": n,
        "transcoders": transcoders,
        "mpr": Rate(n, max(latencies), latencies, "jobs"),
        "raw": raw,
    }


# --- (e) trim: bytes read from S3 through a counting proxy ----------------------------------------
@contextmanager
def proxied_stack(workdir: Path, **kw) -> Iterator[tuple[Stack, TcpProxy]]:
    """A stack whose S3 server a counting proxy also fronts (for the trim's reader only), started."""
    moto_port = free_port()
    proxy = TcpProxy(moto_port).start()
    st = Stack(workdir, s3_port=moto_port, **kw)
    try:
        st.start()
        yield st, proxy
    finally:
        proxy.stop()
        st.stop()


def trim(
    st: Stack,
    proxy: TcpProxy,
    work: Path,
    seconds: int,
    runs: int,
    span: int = 10,
    size: str = "1280x720",
    fps: int = 25,
) -> dict:
    """``span`` s trims of a ``seconds`` long ``size`` source through MPR (on a stack of ``proxied_stack`` with no
    transcoder running: the trim's own reads S3 through ``proxy``), per preset: the key-frame-only
    ``copy``, the frame-accurate ``accurate`` (smart cut) and a full re-encode; the bytes each read from
    S3, its wall time, and the same trim of the local file (the transcoder's own FFmpeg arguments; for
    ``accurate``, its steps: ``mpr_transcoder.kinds.trim``)."""

    def local_smart_trims(body: dict, src: Path) -> Rate:
        info = asyncio.run(probe(str(src), protocols="file"))

        async def run(args: list[str]) -> list[str]:
            return await run_ffmpeg(args, lambda r: None, timeout=600)

        times = []
        for i in range(runs):
            out = work / f"raw-accurate-{i}"
            cut = smart_trim(
                str(src), info, body["start"], body["end"], out / "w", out / "o.mp4", run, protocols="file"
            )
            t0 = time.perf_counter()
            asyncio.run(cut)
            times.append(time.perf_counter() - t0)
        return Rate(runs, sum(times), times, "commands")

    src = make_source(work / "big.mp4", seconds, size, "6M", fps)
    s3_client(st).upload_file(str(src), st.bucket_in, "bench/big.mp4")
    # Only this transcoder reads through the proxy, and no other runs meanwhile.
    proxied = st.start_service("transcoder", "transcoder-proxied", env={"S3_ENDPOINT_URL": proxy.url})
    try:
        api = api_client(st.api_url)
        # Mid-GOP (key frames every 2 s): the accurate cut re-encodes a partial GOP at both edges.
        start = seconds / 2 + 0.52
        results = {}
        for preset in ("copy", "accurate", "h264-720p"):
            body = {
                "kind": "trim",
                "source_key": "bench/big.mp4",
                "start": start,
                "end": start + span,
                "preset": preset,
            }
            reads, conns, times = [], [], []
            for _ in range(runs):
                before, conns_before = proxy.bytes_down, proxy.connections
                times.append(run_job(api, body))
                time.sleep(0.2)  # FFmpeg exited long ago; let the proxy settle its last connections
                reads.append(proxy.bytes_down - before)
                conns.append(proxy.connections - conns_before)
            smart = PRESETS[preset].video_codec == "smart"
            results[preset] = {
                "read": sorted(reads)[len(reads) // 2],
                "connections": max(conns),
                "mpr": Rate(runs, sum(times), times, "jobs"),
                "raw": local_smart_trims(body, src) if smart else ffmpeg_runs(body, src, work, runs),
            }
    finally:
        proxied.stop()
    return {
        "source_bytes": src.stat().st_size,
        "seconds": seconds,
        "span": span,
        "unread_bound": proxy.unread_bound,
        "presets": results,
    }
