"""The catalog's probe rate: N small media objects (about 50 KB of lavfi H.264 + AAC) in moto's S3.

- ``stack``: the embedded stack's nats-server, moto, SQLite and catalog, with ``CATALOG_PROBE_CONCURRENCY``
  set to each width (``0``: the catalog's default for this machine); the objects are published as the
  scanner publishes them, and the rate is objects probed (recorded in the catalog) per second from the
  first event on, with the CPU seconds per object of the catalog, its ffprobes and moto.
- ``prober``: the catalog's Prober alone (presigned URL + ffprobe, no database) at each width — vs the
  ceiling, raw ffprobe on the same presigned URLs from a thread pool of the same width, in the same run.

    uv run python -m bench.probes --objects 500 --concurrency 2,0 --rounds 3 [--only stack]

Each figure is the median of the rounds, with the spread."""

from __future__ import annotations

import argparse
import asyncio
import os
import resource
import sqlite3
import subprocess
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from mpr_catalog.ingest import NewAsset
from mpr_catalog.prober import Prober
from mpr_catalog.settings import default_probe_concurrency
from mpr_common import subjects
from mpr_common.bus import connect, publish_event
from mpr_common.events import ObjectFound
from mpr_common.mediainfo import ffprobe_args
from mpr_common.settings import NatsSettings, S3Settings
from mpr_common.storage import ensure_buckets, get_presigned_url, get_s3_client
from mpr_devstack.servers import MotoServer, NatsServer, free_port
from mpr_devstack.stack import Stack

from .common import Rate, ffmpeg, median_rate, proc_cpu_s

BUCKET = "bench-probe-in"


def make_small(path: Path) -> Path:
    """About 50 KB: 2 s of 320x240 H.264 and AAC in MP4."""
    ffmpeg(
        "-f",
        "lavfi",
        "-i",
        "testsrc2=size=320x240:rate=25:duration=2",
        "-f",
        "lavfi",
        "-i",
        "sine=duration=2",
        "-c:v",
        "libx264",
        "-preset",
        "ultrafast",
        "-b:v",
        "150k",
        "-c:a",
        "aac",
        "-b:a",
        "32k",
        "-shortest",
        "-movflags",
        "+faststart",
        str(path),
    )
    return path


def upload(s3, src: Path, n: int) -> list[NewAsset]:
    body = src.read_bytes()
    keys = [f"probe/{i:06d}.mp4" for i in range(n)]
    with ThreadPoolExecutor(16) as pool:
        list(pool.map(lambda k: s3.put_object(Bucket=BUCKET, Key=k, Body=body), keys))
    return [NewAsset(f"{i:032x}", BUCKET, k, "e", len(body)) for i, k in enumerate(keys)]


def _cpu() -> tuple[float, float]:
    me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime, kids.ru_utime + kids.ru_stime


async def _prober_round(s3, assets: list[NewAsset], concurrency: int) -> Rate:
    done = asyncio.Event()
    results: list[str | None] = []

    async def on_done(asset: NewAsset, info, error) -> None:
        results.append(error)
        if len(results) == len(assets):
            done.set()

    prober = Prober(s3, on_done, concurrency, timeout=60, max_queued=len(assets) + 1, nice=0)
    t0 = time.perf_counter()
    prober.start()
    for a in assets:
        prober.submit(a)
    await asyncio.wait_for(done.wait(), 600)
    seconds = time.perf_counter() - t0
    await prober.stop()
    errors = [e for e in results if e]
    if errors:
        raise RuntimeError(f"{len(errors)} probes failed, e.g. {errors[0]}")
    return Rate(len(assets), seconds, [], "objects")


def prober_round(s3, assets: list[NewAsset], concurrency: int) -> tuple[Rate, float, float]:
    """The Prober on ``assets``: (rate, CPU s/object here, CPU s/object in ffprobe)."""
    me0, kids0 = _cpu()
    rate = asyncio.run(_prober_round(s3, assets, concurrency))
    me1, kids1 = _cpu()
    return rate, (me1 - me0) / len(assets), (kids1 - kids0) / len(assets)


def raw_round(s3, assets: list[NewAsset], concurrency: int) -> tuple[Rate, float, float]:
    """The ceiling: raw ffprobe on the same presigned URLs, ``concurrency`` at a time."""
    urls = [get_presigned_url(a.key, a.bucket, 900, client=s3) for a in assets]
    me0, kids0 = _cpu()
    t0 = time.perf_counter()
    with ThreadPoolExecutor(concurrency) as pool:
        list(pool.map(lambda u: subprocess.run(ffprobe_args(u), check=True, capture_output=True), urls))
    rate = Rate(len(assets), time.perf_counter() - t0, [], "objects")
    me1, kids1 = _cpu()
    return rate, (me1 - me0) / len(assets), (kids1 - kids0) / len(assets)


def probe_rates(n: int, concurrencies: list[int], rounds: int, log=print) -> dict:
    server = MotoServer().start()
    try:
        s3 = get_s3_client(
            S3Settings(endpoint_url=server.url, access_key_id="k", secret_access_key="s", bucket_in=BUCKET)
        )
        ensure_buckets(s3, BUCKET)
        with tempfile.TemporaryDirectory() as tmp:
            src = make_small(Path(tmp) / "small.mp4")
            assets = upload(s3, src, n)
            log(f"{n} objects of {src.stat().st_size:,} bytes in moto; {os.cpu_count()} cores")
        res: dict = {"objects": n, "cores": os.cpu_count(), "rows": {}}
        for c in concurrencies:
            for name, fn in (("prober", prober_round), ("raw ffprobe", raw_round)):
                runs = [fn(s3, assets, c) for _ in range(rounds)]
                rate = median_rate([r for r, _, _ in runs])
                mid = next(r for r in runs if r[0] is rate)
                res["rows"][(name, c)] = (rate, mid[1], mid[2])
                log(
                    f"{name:12s} x{c:<3d} {rate.per_s:6.1f} objects/s  (CPU/object: {1000 * mid[1]:.0f} ms "
                    f"here, {1000 * mid[2]:.0f} ms ffprobe)  {rate.note}"
                )
        return res
    finally:
        server.stop()


def _probed(db: Path, prefix: str) -> int:
    try:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5) as conn:
            sql = "SELECT count(*) FROM assets WHERE probe_status != 'pending' AND key LIKE ?"
            return conn.execute(sql, (prefix + "%",)).fetchone()[0]
    except sqlite3.Error:
        return 0


class CatalogStack(Stack):
    """The embedded stack with only what probing needs: nats-server, moto and the catalog (the objects
    are published as the scanner publishes them; no API to wait for on a loaded machine)."""

    def start(self) -> CatalogStack:
        self.workdir.mkdir(parents=True, exist_ok=True)
        (self.workdir / "logs").mkdir(exist_ok=True)
        self.nats = NatsServer(
            self.workdir / "jetstream",
            port=free_port(),
            log_path=self.workdir / "logs" / "nats-server.log",
            passwords=self.nats_passwords(),
        ).start()
        self.moto = MotoServer(log_path=self.workdir / "logs" / "s3.log").start()
        ensure_buckets(self.s3_client(), self.bucket_in, self.bucket_out)
        self.setup_jetstream()
        self.start_service("catalog")
        return self

    def publish_found(self, keys: list[str], size: int) -> None:
        env = {**self.env(), **self.nats_identity("scanner")}

        async def run() -> None:
            nc = await connect(NatsSettings.from_env(env), "bench-scanner")
            js = nc.jetstream()
            for i in range(0, len(keys), 100):
                await asyncio.gather(
                    *(
                        publish_event(
                            js,
                            subjects.OBJECT_FOUND,
                            ObjectFound(bucket=self.bucket_in, key=k, size=size, etag=f"e-{k}"),
                            msg_id=f"bench-{k}",
                        )
                        for k in keys[i : i + 100]
                    )
                )
            await nc.drain()

        asyncio.run(run())


def stack_round(work: Path, src: Path, n: int, concurrency: int, timeout: float = 900) -> dict:
    """Register ``n`` objects in a fresh catalog that probes ``concurrency`` at a time (0: its default);
    objects probed per second from the first event on, CPU seconds per object."""
    env = {"CATALOG_PROBE_CONCURRENCY": str(concurrency)} if concurrency else {}
    st = CatalogStack(work, transcoders=0, extra_env=env)
    try:
        st.start()
        s3 = st.s3_client()
        body = src.read_bytes()
        keys = [f"probe/{i:06d}.mp4" for i in range(n)]
        with ThreadPoolExecutor(16) as pool:
            list(pool.map(lambda k: s3.put_object(Bucket=st.bucket_in, Key=k, Body=body), keys))
        catalog = st.services["catalog"].popen.pid
        assert st.moto is not None and st.moto.proc is not None
        pids = {"catalog": catalog, "moto": st.moto.proc.popen.pid}
        deadline = time.monotonic() + 120  # the catalog is up when it has made its tables
        while not _tables(work / "catalog.db") and time.monotonic() < deadline:
            time.sleep(0.2)
        cpu0 = {k: proc_cpu_s(p) for k, p in pids.items()}
        kids0 = _children_cpu(catalog)
        t0 = time.perf_counter()
        st.publish_found(keys, len(body))
        published = time.perf_counter() - t0
        deadline = time.monotonic() + timeout
        while (done := _probed(work / "catalog.db", "probe/")) < n and time.monotonic() < deadline:
            time.sleep(0.1)
        seconds = time.perf_counter() - t0
        cpu = {k: (proc_cpu_s(p) - cpu0[k]) / n for k, p in pids.items()}
        cpu["ffprobe"] = (_children_cpu(catalog) - kids0) / n
        return {"rate": Rate(done, seconds, [], "objects"), "published_s": published, "cpu": cpu}
    finally:
        st.stop()


def _tables(db: Path) -> bool:
    try:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5) as conn:
            return conn.execute("SELECT count(*) FROM assets").fetchone() is not None
    except sqlite3.Error:
        return False


def _children_cpu(pid: int) -> float:
    """CPU seconds of the waited-for children of ``pid`` (its ffprobes): /proc stat's cutime + cstime."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[13]) + int(fields[14])) / os.sysconf("SC_CLK_TCK")


def stack_rates(n: int, concurrencies: list[int], rounds: int, log=print) -> dict:
    res: dict = {"objects": n, "cores": os.cpu_count(), "rows": {}}
    with tempfile.TemporaryDirectory() as tmp:
        src = make_small(Path(tmp) / "small.mp4")
        for c in concurrencies:
            runs = [stack_round(Path(tmp) / f"stack-{c}-{r}", src, n, c) for r in range(rounds)]
            rate = median_rate([r["rate"] for r in runs])
            mid = next(r for r in runs if r["rate"] is rate)
            res["rows"][c] = mid
            cpu = ", ".join(f"{k} {1000 * v:.0f} ms" for k, v in mid["cpu"].items())
            width = c or f"default ({default_probe_concurrency()})"
            log(
                f"stack x{width}: {rate.count}/{n} probed, {rate.per_s:5.1f} objects/s "
                f"(events published in {mid['published_s']:.1f}s; CPU/object: {cpu})  {rate.note}"
            )
    return res


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--objects", type=int, default=500)
    p.add_argument("--concurrency", default="2,0", help="comma-separated widths; 0: the default")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--only", choices=("stack", "prober"))
    a = p.parse_args(argv)
    widths = [int(c) for c in a.concurrency.split(",")]
    if a.only != "prober":
        stack_rates(a.objects, widths, a.rounds)
    if a.only != "stack":
        probe_rates(a.objects, [c or default_probe_concurrency() for c in widths], a.rounds)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
