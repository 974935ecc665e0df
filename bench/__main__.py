"""End-to-end benchmarks on the embedded system (real nats-server, moto S3, FFmpeg on loopback), each
figure beside a ceiling measured in the same run (see bench/ceilings.py):

1. POST /api/jobs, 32 concurrent, until the catalog has recorded every job — vs a bare Litestar POST
   (and the same + a JetStream publish, and raw JetStream publishes), one load generator for all.
2. scan + register N objects until the catalog has them all — vs moto's bare list_objects_v2 paging;
   peak RSS of the catalog, scanner and API meanwhile.
3. transcode through MPR vs raw FFmpeg with the same arguments on a local file.
4. thumbnail jobs/s with 2 transcoders vs the raw FFmpeg thumbnail command, 2 at a time.
5. bytes a 10 s trim read from S3 (counted at the reader) vs the source's size; its wall time vs raw.
6. a package (1080p source → 4 renditions + audio) on 2 transcoders vs one raw FFmpeg command encoding
   the same ladder from a local file.
   With ``--only package-av1`` (not run by default: AV1 costs minutes), the same for abr-av1's AV1 +
   H.264 ladder.
7. chunked, progressive packages: time to playable vs time to complete, chunked vs unchunked, 2
   transcoders vs 1 (one FFmpeg thread each) and the critical path at 16 and 64, the bytes each rung's
   chunks read from S3, and each chunked rendition's frames, joins, A/V drift and PSNR vs the unchunked.
8. the cost of quality metrics: a package's rung encodes with x264's per-frame PSNR/SSIM vs without.

Results are written as Markdown to docs/benchmarks.md (or --out).
"""

from __future__ import annotations

import argparse
import tempfile
from dataclasses import dataclass
from pathlib import Path

from mpr_devstack.stack import Stack

from . import ceilings, mpr
from .chunked import chunked
from .common import ffmpeg_version
from .loadgen import cpu_count
from .metrics_cost import metrics_cost
from .package import AV1_LADDER, package
from .per_title import per_title
from .report import report

SECTIONS = (
    "api",
    "scan",
    "transcode",
    "thumbnail",
    "trim",
    "package",
    "chunked",
    "quality",
    "per_title",
    "package-av1",
)
# What a run does unless --only says otherwise: the AV1 ladder only when asked for (minutes of CPU)
DEFAULT_SECTIONS = tuple(s for s in SECTIONS if s != "package-av1")


@dataclass(frozen=True)
class Sizes:
    api_requests: int
    api_warmup: int
    concurrency: int
    ceiling_rounds: int
    scan_objects: int
    transcode_seconds: int
    transcode_runs: int
    thumbnails: int
    trim_seconds: int  # the source's length: over twice trim_span + 1 s (the trim starts mid-source, mid-GOP)
    trim_runs: int
    package_seconds: int
    package_runs: int
    # Every section on one stack, in turn (the stacks' starts are most of a smoke run's CPU; figures
    # taken on a stack that already ran other sections are no measurement); False: a stack per kind.
    one_stack: bool = False
    trim_span: int = 10  # seconds each trim keeps
    thumbnail_seconds: int = 10  # the thumbnails' source
    # The frame size of the sources of the transcode, the thumbnails and the trim (h264-720p keeps a
    # smaller one's height: "max 720 lines").
    source_size: str = "1280x720"
    fps: int = 25  # every source's frame rate (key frames every 2 s whatever it is)
    # Chunked packages: the source of time to playable, chunked vs not, bytes and quality; the source
    # of the scale-out pair (1 and 2 transcoders on one FFmpeg thread each: the longest runs); its
    # frame size; chunk_seconds (None: the default, mpr_common.jobs.DEFAULT_CHUNK_SECONDS); runs of each.
    chunked_seconds: int = 300
    chunked_scale_seconds: int = 60
    chunked_size: str = "1920x1080"
    chunk_seconds: float | None = None
    chunked_runs: int = 1
    # The cost of quality metrics: the noisy source's length, frame size and rate; runs of each way.
    quality_seconds: int = 10
    quality_size: str = "1920x1080"
    quality_fps: int = 25
    quality_runs: int = 3
    # Per-title ladders against the fixed one: the two sources' length, frame size and rate.
    per_title_seconds: int = 30
    per_title_size: str = "1280x720"
    per_title_fps: int = 25


FULL = Sizes(20_000, 1_000, 32, 3, 100_000, 30, 5, 20, 300, 3, 60, 1)
# A smoke run (tests/system/test_bench_smoke.py): every section end to end, the fewest sizes that
# still exercise it, on one stack: the trim still has whole GOPs between mid-GOP edges (4 s of a 10 s
# source, key frames every 2 s), the package still a 1080p source (the whole 4-rung ladder); the 720p
# sources are 180p and the stack's sources 5 fps (every FFmpeg command and job the same, on fewer
# pixels and frames: key frames still every 2 s, so GOPs, segments and chunks keep their shape).
QUICK = Sizes(
    api_requests=200,
    api_warmup=20,
    concurrency=32,
    ceiling_rounds=1,
    scan_objects=100,
    transcode_seconds=2,
    transcode_runs=1,
    thumbnails=2,
    trim_seconds=10,
    trim_runs=1,
    package_seconds=1,
    package_runs=1,
    one_stack=True,
    trim_span=4,
    thumbnail_seconds=2,
    source_size="320x180",
    fps=5,
    # The shortest source cut in two chunks: abr-h264's segments are 4 s, a chunk is whole segments
    # and a tail under half a segment joins the chunk before it; 360p: one rung and the sound.
    chunked_seconds=7,
    chunked_scale_seconds=7,
    chunked_size="640x360",
    chunk_seconds=4,
    quality_seconds=1,
    quality_size="320x180",
    quality_fps=10,
    quality_runs=1,
    per_title_seconds=2,
    per_title_size="320x180",
    per_title_fps=10,
)
TRANSCODERS = 2  # for the transcode and thumbnail figures
API_STACK_ENV = {"CATALOG_PROBE_CONCURRENCY": "1"}


def api_sections(st: Stack, z: Sizes, only: set[str], load_processes: int, log, res: dict) -> None:
    """POST /api/jobs and its ceilings; scan + register. No transcoder runs on ``st``."""
    assert st.nats is not None
    if "api" in only:
        log(f"bare Litestar POST and MPR's POST /api/jobs × {z.api_requests:,}, round by round…")
        rounds: list[dict] = []

        def mpr_round(r: int) -> None:
            warmup = z.api_warmup if r == 0 else 0
            rounds.append(mpr.post_jobs(st, z.api_requests, z.concurrency, warmup, load_processes))

        res["bare"], res["bare_loads"] = ceilings.bare_litestar(
            z.api_requests,
            z.concurrency,
            z.api_warmup,
            z.ceiling_rounds,
            processes=load_processes,
            between=mpr_round,
        )
        res["api"] = mpr.median_round(rounds)
        log("ceilings: + JetStream publish, raw JetStream publish…")
        ceilings.prepare_bench_stream(st.nats.url)
        res["bare_js"], _ = ceilings.bare_litestar(
            z.api_requests,
            z.concurrency,
            z.api_warmup,
            z.ceiling_rounds,
            nats_url=st.nats.url,
            processes=load_processes,
        )
        res["jetstream"] = ceilings.jetstream_publish(
            st.nats.url, z.api_requests, z.concurrency, z.ceiling_rounds
        )
    if "scan" in only:
        log(f"scan + register {z.scan_objects:,} objects (and moto's listing of them)…")
        res["scan"] = mpr.scan(st, z.scan_objects, z.ceiling_rounds)


def ffmpeg_sections(st: Stack, work: Path, z: Sizes, only: set[str], log, res: dict) -> None:
    """Transcode, thumbnails, package, on ``st``'s TRANSCODERS transcoders."""
    if "transcode" in only:
        log("transcode…")
        res["transcode"] = mpr.transcode(
            st, work, z.transcode_seconds, z.transcode_runs, z.source_size, z.fps
        )
    if "thumbnail" in only:
        log("thumbnails…")
        res["thumbnail"] = mpr.thumbnails(
            st, work, z.thumbnails, TRANSCODERS, z.ceiling_rounds, z.thumbnail_seconds, z.source_size, z.fps
        )
    if "package" in only:
        log("package…")
        res["package"] = package(st, work, z.package_seconds, z.package_runs, z.fps)
    if "package-av1" in only:
        log("package, AV1 + H.264…")
        res["package-av1"] = package(st, work, z.package_seconds, z.package_runs, z.fps, AV1_LADDER)


def chunked_section(st: Stack, proxy, work: Path, z: Sizes, log) -> dict:
    log("chunked packages…")
    return chunked(
        st,
        proxy,
        work,
        z.chunked_seconds,
        z.chunked_scale_seconds,
        z.chunked_size,
        z.fps,
        z.chunk_seconds,
        z.chunked_runs,
        TRANSCODERS,
        log,
    )


def ffmpeg_alone_sections(work: Path, z: Sizes, only: set[str], log, res: dict) -> None:
    """The sections that run FFmpeg alone, before any stack runs beside it."""
    if "quality" in only:
        res["quality"] = metrics_cost(
            work, z.quality_seconds, z.quality_size, z.quality_fps, z.quality_runs, log
        )
    if "per_title" in only:
        res["per_title"] = per_title(work, z.per_title_seconds, z.per_title_size, z.per_title_fps, log)


def run(work: Path, z: Sizes, only: set[str], load_processes: int = 1, log=print) -> dict:
    res: dict = {"cores": cpu_count(), "ffmpeg": ffmpeg_version()}
    ffmpeg_alone_sections(work, z, only, log, res)
    ffmpeg_kinds = {"transcode", "thumbnail", "package", "package-av1"}
    if z.one_stack:
        # The sections that need transcoders first, then the trim (its own transcoder alone), then the
        # API and the scan with none running (the jobs they post stay queued, as on a stack of their own).
        with mpr.proxied_stack(
            work / "stack", transcoders=TRANSCODERS if only & ffmpeg_kinds else 0, extra_env=API_STACK_ENV
        ) as (st, proxy):
            ffmpeg_sections(st, work, z, only, log, res)
            for name in [n for n in st.services if n.startswith("transcoder-")]:
                st.services[name].stop()
            if "chunked" in only:  # its own transcoders, reading S3 through the proxy
                res["chunked"] = chunked_section(st, proxy, work, z, log)
            if "trim" in only:
                log("trim…")
                res["trim"] = mpr.trim(
                    st, proxy, work, z.trim_seconds, z.trim_runs, z.trim_span, z.source_size, z.fps
                )
            api_sections(st, z, only, load_processes, log, res)
        return res
    if only & {"api", "scan"}:
        st = Stack(work / "api-stack", transcoders=0, extra_env=API_STACK_ENV)
        try:
            st.start()
            api_sections(st, z, only, load_processes, log, res)
        finally:
            st.stop()
    if only & ffmpeg_kinds:
        st = Stack(work / "ffmpeg-stack", transcoders=TRANSCODERS)
        try:
            st.start()
            ffmpeg_sections(st, work, z, only, log, res)
        finally:
            st.stop()
    if "chunked" in only:
        with mpr.proxied_stack(work / "chunked-stack", transcoders=0) as (st, proxy):
            res["chunked"] = chunked_section(st, proxy, work, z, log)
    if "trim" in only:
        log("trim…")
        with mpr.proxied_stack(work / "trim-stack", transcoders=0) as (st, proxy):
            res["trim"] = mpr.trim(
                st, proxy, work, z.trim_seconds, z.trim_runs, z.trim_span, z.source_size, z.fps
            )
    return res


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m bench", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument(
        "--quick",
        action="store_true",
        help="smallest sizes, one stack: a smoke run (its figures measure nothing)",
    )
    p.add_argument("--out", type=Path, default=Path("docs/benchmarks.md"))
    p.add_argument(
        "--only",
        default=",".join(DEFAULT_SECTIONS),
        help=f"comma-separated subset of {','.join(SECTIONS)} (default: all but package-av1)",
    )
    p.add_argument(
        "--load-processes",
        type=int,
        default=1,
        help="processes generating the HTTP load (default 1: the report shows its CPU cost per request)",
    )
    args = p.parse_args(argv)
    only = {s.strip() for s in args.only.split(",") if s.strip()}
    if not only <= set(SECTIONS):
        p.error(f"--only: unknown {sorted(only - set(SECTIONS))}")
    with tempfile.TemporaryDirectory(prefix="mpr-bench-") as tmp:
        res = run(
            Path(tmp),
            QUICK if args.quick else FULL,
            only,
            args.load_processes,
            log=lambda m: print(m, flush=True),
        )
    text = report(res, args.quick)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
