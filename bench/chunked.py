"""(g) Chunked, progressive packages: a package whose source is longer than its ``chunk_seconds``
becomes rung × chunk child jobs (plus one audio child over the whole source) spread over every
transcoder, stitched by the package chord, and announced playable (``job.playable``) as soon as the
sound and every rung's first chunk are up. Measured here, every figure in the same run:

1. time to playable: POST → ``job.playable`` on the job's event stream, checked by ffprobe opening the
   master playlist through the job's ``playable_url``; beside the same package's time to complete;
2. no loss on one machine: the chunked package vs the same package with ``chunk_seconds: 0``;
3. scale-out: transcoders bounded to one FFmpeg thread and one job (a transcoder per core), 2 vs 1 on
   the chunked package; and the critical path at 16 and 64 transcoders, list-scheduled from the
   1-transcoder run's measured child durations (:func:`critical_path`);
4. bytes read from S3 by each rung's chunks, counted by a proxy in front of S3 that attributes each
   connection to the process that opened it (:class:`ProcessLabels`), on a pair of its own (the scale-out
   source, chunked and not): the proxy copies every byte in this process, which would weigh on the
   timed figures, so items 1 and 2 read S3 directly;
5. quality of each chunked rendition vs the unchunked one of item 2 (:mod:`bench.quality`)."""

from __future__ import annotations

import heapq
import posixpath
import re
import socket
import statistics
import time
import urllib.request
import uuid
from pathlib import Path

import httpx

from mpr_common.jobs import CHUNK_SUFFIX
from mpr_devstack.servers import wait_until
from mpr_devstack.stack import Stack
from mpr_devstack.tcp_proxy import TcpProxy

from .common import JobWatch, api_client, job_of, make_source, s3_client, submit
from .mpr import register
from .package import LADDER
from .quality import ffprobe_json, rendition_quality, source_media

PLAYABLE = "job.playable"
# A transcoder per core: each FFmpeg run on one thread, one job at a time.
ONE_CORE_ENV = {"TRANSCODER_FFMPEG_THREADS": "1", "TRANSCODER_CONCURRENCY": "1"}
SCHEDULED_TRANSCODERS = (16, 64)
# A chunk child's id: <package>-<rung><CHUNK_SUFFIX>
_CHUNK_ID = re.compile(rf"-(?P<rung>[^-]+){re.escape(CHUNK_SUFFIX.split('{')[0])}(?P<index>\d+)$")


# --- bytes from S3, per process ------------------------------------------------------------------
def _hex_addr(addr: tuple[str, int]) -> str:
    """``addr`` as /proc/net/tcp writes it (IPv4, host byte order on little-endian machines)."""
    return f"{socket.inet_aton(addr[0])[::-1].hex().upper()}:{addr[1]:04X}"


def _socket_inode(local: tuple[str, int], remote: tuple[str, int]) -> int | None:
    want = (_hex_addr(local), _hex_addr(remote))
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        f = line.split()
        if (f[1], f[2]) == want:
            return int(f[9])
    return None


def _descendants(roots: set[int]) -> list[int]:
    children: dict[int, list[int]] = {}
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                ppid = int((d / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(d.name))
    out, todo = [], list(roots)
    while todo:
        pid = todo.pop()
        out.append(pid)
        todo += children.get(pid, [])
    return out


def _owner(inode: int, pids: list[int]) -> list[str] | None:
    """The argv of the process (among ``pids``) that holds socket ``inode``."""
    target = f"socket:[{inode}]"
    for pid in pids:
        try:
            fds = Path(f"/proc/{pid}/fd")
            for fd in fds.iterdir():
                if fd.readlink().as_posix() == target:
                    return Path(f"/proc/{pid}/cmdline").read_text().rstrip("\0").split("\0")
        except OSError:
            continue
    return None


def classify(argv: list[str] | None) -> str:
    """What opened a connection: the rendition an FFmpeg run writes (a chunk's counts as its rung's:
    ``1080p``, ``audio``), ``ffprobe``, or the transcoder's own Python (boto3: heads, uploads, lists)."""
    if argv is None:
        return "unknown"
    prog = next((Path(a).name for a in argv if Path(a).name in ("ffmpeg", "ffprobe")), None)
    if prog == "ffprobe":
        return "ffprobe"
    if prog == "ffmpeg":
        playlists = [Path(a).name for a in argv if a.endswith(".m3u8")]
        return re.sub(r"(\.c\d{4})?\.m3u8$", "", playlists[-1]) if playlists else "ffmpeg"
    return "transcoder"


class ProcessLabels:
    """A :attr:`TcpProxy.label`: each connection named by :func:`classify` of the process (one of the
    transcoders or a process they started) whose socket it is, looked up as it connects."""

    def __init__(self, proxy: TcpProxy, roots: set[int]) -> None:
        self.listen = ("127.0.0.1", proxy.port)
        self.roots = roots

    def __call__(self, client: tuple[str, int]) -> str:
        try:
            inode = _socket_inode(client, self.listen)
            return "unknown" if inode is None else classify(_owner(inode, _descendants(self.roots)))
        except OSError:
            return "unknown"


def _delta(after: dict[str, int], before: dict[str, int]) -> dict[str, int]:
    return {k: v - before.get(k, 0) for k, v in after.items() if v - before.get(k, 0)}


# --- the critical path ----------------------------------------------------------------------------
def list_schedule(durations: list[float], workers: int) -> float:
    """Makespan of ``durations`` taken in order, each by the first worker free."""
    free = [0.0] * workers
    end = 0.0
    for d in durations:
        t = heapq.heappop(free) + d
        end = max(end, t)
        heapq.heappush(free, t)
    return end


def rung_height(rung: str) -> int:
    """A rung's height from its name (``720p``: 720; 0 when it has none)."""
    return int(re.sub(r"\D", "", rung) or 0)


def tallest_first(rungs: set[str]) -> list[str]:
    return sorted(rungs, key=lambda r: -rung_height(r))


def queue_order(child_ids: list[str]) -> list[str]:
    """The children in the order their package publishes them (``PackagePlan.jobs``): the whole ones
    (the sound) first, then chunk by chunk, each chunk's rungs heaviest (tallest) first."""

    def key(cid: str) -> tuple[int, int, int]:
        m = _CHUNK_ID.search(cid)
        if m is None:
            return (0, 0, 0)
        return (1, int(m["index"]), -rung_height(m["rung"]))

    return sorted(child_ids, key=key)


def one_worker_breakdown(run: dict) -> dict:
    """A package run on one transcoder: its head (POST → first child started), the mean dispatch gap
    between one child's end and the next one's start, and its tail (last child finished → package
    completed: the stitch, the manifests)."""
    kids = list(run["children"].values())
    first = min(k["started_at"] for k in kids)
    last = max(k["finished_at"] for k in kids)
    busy = sum(k["finished_at"] - k["started_at"] for k in kids)
    longest = max(kids, key=lambda k: k["finished_at"] - k["started_at"])
    return {
        "longest": (longest["id"], longest["finished_at"] - longest["started_at"]),
        "head": first - run["posted_at"],
        "tail": run["posted_at"] + run["complete"] - last,
        "gap": max(0.0, (last - first - busy) / max(1, len(kids) - 1)),
        "children": len(kids),
    }


def busy_seconds(run: dict) -> float:
    """The children's time on transcoders, summed."""
    return sum(k["finished_at"] - k["started_at"] for k in run["children"].values())


def critical_path(run: dict, workers: int) -> float:
    """The package's wall time on ``workers`` transcoders, from a run on one: its children's measured
    durations, each plus the mean dispatch gap, list-scheduled in queue order, between the run's head
    and tail, which no number of transcoders shortens."""
    w = one_worker_breakdown(run)
    kids = run["children"]
    durations = [kids[c]["finished_at"] - kids[c]["started_at"] + w["gap"] for c in queue_order(list(kids))]
    return w["head"] + list_schedule(durations, workers) + w["tail"]


# --- one package --------------------------------------------------------------------------------
def run_package(api: httpx.Client, body: dict, playable: bool, timeout: float = 3600) -> dict:
    """POST a package and follow it on the event stream to its completion; with ``playable``, also to
    its ``job.playable``, at which ffprobe opens the master through the job's ``playable_url``."""
    job_id = body["job_id"]
    watch = JobWatch(str(api.base_url), [job_id], timeout, also=(PLAYABLE,) if playable else ())
    t0, posted_at = time.perf_counter(), time.time()
    submit(api, body)
    res: dict = {"posted_at": posted_at}
    if playable:
        res["playable"] = watch.wait_for(job_id, PLAYABLE, timeout) - t0
        url = _playable_url(api, job_id)
        p0 = time.perf_counter()
        streams = ffprobe_json("-show_streams", url)["streams"]
        res["probe_s"] = time.perf_counter() - p0
        res["streams"] = {
            kind: sum(1 for s in streams if s.get("codec_type") == kind) for kind in ("video", "audio")
        }
    res["complete"] = watch.wait()[job_id] - t0
    job = job_of(api.get(f"/api/jobs/{job_id}").json())
    res["job"] = job
    res["children"] = {c: job_of(api.get(f"/api/jobs/{c}").json()) for c in job["children"]}
    return res


def _playable_url(api: httpx.Client, job_id: str, timeout: float = 30) -> str:
    """The job's ``playable_url``, once the catalog has recorded what the event announced."""
    deadline = time.monotonic() + timeout
    while True:
        url = job_of(api.get(f"/api/jobs/{job_id}").json()).get("playable_url")
        if url:
            return url
        if time.monotonic() > deadline:
            raise TimeoutError(f"{job_id}: job.playable arrived but the job has no playable_url")
        time.sleep(0.05)


def _body(key: str, chunk_seconds: float | None) -> dict:
    body: dict[str, object] = {
        "kind": "package",
        "source_key": key,
        "preset": LADDER,
        "job_id": f"chk-{uuid.uuid4().hex[:12]}",
    }
    if chunk_seconds is not None:
        body["chunk_seconds"] = chunk_seconds
    return body


def _start_transcoders(st: Stack, names: list[str], env: dict[str, str]) -> list[int]:
    for name in names:
        st.start_service("transcoder", name, env=env)
    for name in names:
        url = f"http://127.0.0.1:{st.metrics_ports[name]}/health/ready"
        wait_until(
            lambda u=url: urllib.request.urlopen(u, timeout=2).status == 200,
            60,
            name,
            st.services[name].popen,
        )
    return [st.services[n].popen.pid for n in names]


def _stop(st: Stack, names: list[str]) -> None:
    for name in names:
        st.services[name].stop()


def _download(st: Stack, job: dict, into: Path) -> Path:
    """The package's folder, from S3 to ``into`` (the quality checks read local files)."""
    s3 = s3_client(st)
    folder = posixpath.dirname(job["output_key"])
    into.mkdir(parents=True, exist_ok=True)
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=st.bucket_out, Prefix=folder + "/"):
        for obj in page.get("Contents", []):
            s3.download_file(st.bucket_out, obj["Key"], str(into / posixpath.basename(obj["Key"])))
    return into


def _upload(st: Stack, api: httpx.Client, src: Path, key: str) -> None:
    s3_client(st).upload_file(str(src), st.bucket_in, key)
    register(api, key)


def _bytes_pair(
    st: Stack, api: httpx.Client, proxy: TcpProxy, key: str, chunk_seconds: float | None, transcoders: int
) -> dict:
    """The bytes each rung's children read from S3 (by the process that opened each connection), the
    package chunked then not, on transcoders that reach S3 through the counting proxy."""
    names = [f"transcoder-counted-{i + 1}" for i in range(transcoders)]
    pids = _start_transcoders(st, names, {"S3_ENDPOINT_URL": proxy.url})
    proxy.label = ProcessLabels(proxy, set(pids))
    read: dict = {}
    try:
        for way, seconds in (("chunked", chunk_seconds), ("whole", 0)):
            before = proxy.bytes_down_by_label
            run = run_package(api, _body(key, seconds), playable=False)
            time.sleep(0.2)  # the proxy settles the connections FFmpeg closed
            read[way] = _delta(proxy.bytes_down_by_label, before)
            if way == "chunked":
                rungs = [m["rung"] for c in run["children"] if (m := _CHUNK_ID.search(c))]
                read["chunks_per_rung"] = {rung: rungs.count(rung) for rung in tallest_first(set(rungs))}
    finally:
        proxy.label = None
        _stop(st, names)
    return read


def chunked(
    st: Stack,
    proxy: TcpProxy,
    work: Path,
    seconds: int,
    scale_seconds: int,
    size: str,
    fps: int,
    chunk_seconds: float | None,
    runs: int,
    transcoders: int,
    log=print,
) -> dict:
    """Every figure of this section on ``st`` (started with no transcoder of its own: this starts
    those it measures), whose S3 server ``proxy`` fronts for them."""
    api = api_client(st.api_url)
    src = make_source(work / "chunked.mp4", seconds, size, "8M", fps)
    _upload(st, api, src, "bench-chunked/src.mp4")
    names = [f"transcoder-chunked-{i + 1}" for i in range(transcoders)]
    _start_transcoders(st, names, {})  # S3 directly: the timed figures carry no counting proxy
    pairs: list[tuple[dict, dict]] = []
    try:
        for _ in range(runs):  # in pairs: a pair sees the same machine
            log("chunked package (progressive)…")
            on = run_package(api, _body("bench-chunked/src.mp4", chunk_seconds), playable=True)
            log("the same, chunk_seconds 0…")
            off = run_package(api, _body("bench-chunked/src.mp4", 0), playable=False)
            pairs.append((on, off))
    finally:
        _stop(st, names)

    log("quality of the renditions…")
    on, off = pairs[0]
    source = source_media(src, fps)
    chunked_dir = _download(st, on["job"], work / "out-chunked")
    whole_dir = _download(st, off["job"], work / "out-whole")
    rungs = tallest_first(
        {k["rendition"] for k in on["children"].values() if k.get("rendition") not in (None, "audio")}
    )
    quality = {
        rung: {
            "chunked": rendition_quality(chunked_dir, rung, src, source),
            "whole": rendition_quality(whole_dir, rung, src, source),
        }
        for rung in rungs
    }
    chunk_rungs = [m["rung"] for c in on["children"] if (m := _CHUNK_ID.search(c))]
    chunks_per_rung = {rung: chunk_rungs.count(rung) for rung in rungs}

    log("scale-out: 1 then 2 transcoders, one FFmpeg thread each…")
    scale_key = "bench-chunked/src.mp4"
    scale_src = src
    if scale_seconds != seconds:
        scale_src = make_source(work / "chunked-scale.mp4", scale_seconds, size, "8M", fps)
        scale_key = "bench-chunked/scale.mp4"
        _upload(st, api, scale_src, scale_key)
    scale: dict[int, list[dict]] = {1: [], 2: []}
    one = ["transcoder-core-1"]
    _start_transcoders(st, one, ONE_CORE_ENV)
    try:
        for _ in range(runs):
            scale[1].append(run_package(api, _body(scale_key, chunk_seconds), playable=False))
        _start_transcoders(st, ["transcoder-core-2"], ONE_CORE_ENV)
        one.append("transcoder-core-2")
        for _ in range(runs):
            scale[2].append(run_package(api, _body(scale_key, chunk_seconds), playable=False))
    finally:
        _stop(st, one)

    log("bytes read from S3, through the counting proxy…")
    read = _bytes_pair(st, api, proxy, scale_key, chunk_seconds, transcoders)

    med = statistics.median
    single = sorted(scale[1], key=lambda r: r["complete"])[len(scale[1]) // 2]
    return {
        "source": f"{seconds} s {size} {fps} fps H.264 8 Mb/s → {LADDER}",
        "scale_source": f"{scale_seconds} s {size} {fps} fps",
        "source_bytes": src.stat().st_size,
        "unread_bound": proxy.unread_bound,
        "fps": fps,
        "chunk_seconds": chunk_seconds,
        "runs": runs,
        "transcoders": transcoders,
        "children": len(on["children"]),
        "chunks_per_rung": chunks_per_rung,
        "playable": med(p[0]["playable"] for p in pairs),
        "probe": {"seconds": on["probe_s"], "streams": on["streams"]},
        "complete": med(p[0]["complete"] for p in pairs),
        "whole": med(p[1]["complete"] for p in pairs),
        # the children's own time (started → finished, summed): where a difference between the two is
        "busy": {
            "chunked": med(busy_seconds(p[0]) for p in pairs),
            "whole": med(busy_seconds(p[1]) for p in pairs),
        },
        "read": {"chunked": read["chunked"], "whole": read["whole"]},
        "read_chunks_per_rung": read["chunks_per_rung"],
        "read_source_bytes": scale_src.stat().st_size,
        "quality": quality,
        "source_frames": source.frames,
        "scale": {k: med(r["complete"] for r in v) for k, v in scale.items()},
        "each": {  # every run's seconds, in order
            "playable": [p[0]["playable"] for p in pairs],
            "chunked": [p[0]["complete"] for p in pairs],
            "whole": [p[1]["complete"] for p in pairs],
            "scale1": [r["complete"] for r in scale[1]],
            "scale2": [r["complete"] for r in scale[2]],
        },
        "scale_children": len(single["children"]),
        "critical": {k: critical_path(single, k) for k in SCHEDULED_TRANSCODERS},
        "one_worker": one_worker_breakdown(single),
        "one_worker_wall": single["complete"],
    }
