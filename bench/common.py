"""Helpers shared by the ceilings and the MPR figures."""

from __future__ import annotations

import functools
import math
import os
import subprocess
import sys
import threading
import time
import urllib.request
import uuid
from dataclasses import dataclass
from pathlib import Path

import httpx

from mpr_cli.sse import messages
from mpr_common.s3_client import S3Client
from mpr_common.settings import S3Settings
from mpr_common.storage import get_s3_client
from mpr_devstack.servers import free_port, wait_until
from mpr_devstack.stack import DEV_API_TOKEN, Stack

HEADERS = {"Authorization": f"Bearer {DEV_API_TOKEN}"}
REPO = Path(__file__).resolve().parent.parent
MiB = 1024 * 1024


def pct(values: list[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100) of ``values``."""
    if not values:
        return float("nan")
    s = sorted(values)
    return s[max(0, min(len(s), math.ceil(q / 100 * len(s))) - 1)]


@dataclass
class Rate:
    """``count`` things in ``seconds``; ``latencies`` (seconds) of the individual operations."""

    count: int
    seconds: float
    latencies: list[float]
    unit: str = "req"
    note: str = ""

    @property
    def per_s(self) -> float:
        return self.count / self.seconds if self.seconds > 0 else float("nan")

    @property
    def p50_ms(self) -> float:
        return 1000 * pct(self.latencies, 50)

    @property
    def p99_ms(self) -> float:
        return 1000 * pct(self.latencies, 99)


def median_rate(runs: list[Rate]) -> Rate:
    """The run with the median rate (latencies of that run), noting the spread."""
    runs = sorted(runs, key=lambda r: r.per_s)
    mid = runs[len(runs) // 2]
    if len(runs) > 1:
        spread = ", ".join(f"{r.per_s:,.0f}" for r in runs)
        mid.note = (mid.note + "; " if mid.note else "") + f"median of {len(runs)} runs: {spread}"
    return mid


def ffmpeg(*args: str) -> None:
    subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-y", *args], check=True)


def ffmpeg_version() -> str:
    out = subprocess.run(["ffmpeg", "-version"], capture_output=True, text=True).stdout
    return out.split("\n")[0].split(" Copyright")[0]


def make_source(path: Path, seconds: int, size: str, bitrate: str, fps: int = 25) -> Path:
    """A test pattern with a tone, key frames every 2 s."""
    ffmpeg(
        *("-f", "lavfi", "-i", f"testsrc2=size={size}:rate={fps}:duration={seconds}"),
        *("-f", "lavfi", "-i", f"sine=frequency=440:duration={seconds}"),
        *("-c:v", "libx264", "-preset", "ultrafast", "-b:v", bitrate, "-g", str(2 * fps)),
        *("-c:a", "aac", "-shortest", "-movflags", "+faststart", str(path)),
    )
    return path


def api_client(url: str, timeout: float = 60) -> httpx.Client:
    return httpx.Client(base_url=url, headers=HEADERS, timeout=timeout)


def s3_client(st: Stack) -> S3Client:
    """The stack's S3 client, made once: a boto3 client costs about 0.1 s of CPU to make (its session
    loads the S3 models), and the sections upload and list through one again and again."""
    return _s3_client(st.s3_settings())


@functools.cache
def _s3_client(settings: S3Settings) -> S3Client:
    return get_s3_client(settings)


def job_of(body: dict) -> dict:
    """The job in a job response (``{"job": {...}}`` today; a bare job object is accepted too)."""
    return body.get("job", body)


def submit(api: httpx.Client, body: dict) -> str:
    r = api.post("/api/jobs", json=body)
    if r.status_code >= 400:
        raise RuntimeError(f"POST /api/jobs answered {r.status_code}: {r.text}")
    return job_of(r.json())["id"]


TERMINAL_EVENTS = ("job.completed", "job.failed", "job.cancelled")


class JobWatch:
    """Follows jobs to their end on ``GET /api/events`` (server-sent events), as a client waiting for
    its jobs would, rather than polling ``GET /api/jobs/{id}``: a poll every 20 ms per job made the
    catalog and the API spend a core's fraction answering the bench while FFmpeg needed both cores
    (measured: 1.3 s of the catalog's CPU and 0.5 s of the API's during one 9 s transcode).

    The stream is opened for the job ids the bench chose before any job is submitted, so no end is
    missed; ``ended[job_id]`` is the ``time.perf_counter()`` at which the job's end arrived. Events of
    the types in ``also`` (e.g. ``job.playable``) are followed too: ``seen[(job_id, type)]`` is when
    the first one arrived, and :meth:`wait_for` waits for one."""

    def __init__(
        self, api_url: str, job_ids: list[str], timeout: float = 900, also: tuple[str, ...] = ()
    ) -> None:
        self.job_ids = list(job_ids)
        self.ended: dict[str, float] = {}
        self.errors: dict[str, str] = {}
        self.seen: dict[tuple[str, str], float] = {}
        self._also = also
        self._seen_changed = threading.Condition()
        self._open = threading.Event()
        self._done = threading.Event()
        self._failure: BaseException | None = None
        self._timeout = timeout
        params = [("job_id", j) for j in self.job_ids] + [("types", ",".join((*TERMINAL_EVENTS, *also)))]
        self._client = httpx.Client(
            base_url=api_url, headers=HEADERS, timeout=httpx.Timeout(10, read=timeout)
        )
        self._thread = threading.Thread(target=self._follow, args=(params,), daemon=True)
        self._thread.start()
        if not self._open.wait(30):
            raise TimeoutError("GET /api/events did not open")
        if self._failure is not None:
            raise self._failure

    def _follow(self, params: list[tuple[str, str]]) -> None:
        try:
            with self._client.stream("GET", "/api/events", params=params) as r:
                r.raise_for_status()
                self._open.set()
                for _, kind, event in messages(r.iter_lines()):
                    self._end(kind, event)
                    if len(self.ended) == len(self.job_ids):
                        break
        except BaseException as exc:  # seen by wait()
            self._failure = exc
        finally:
            self._open.set()
            self._done.set()
            with self._seen_changed:
                self._seen_changed.notify_all()
            self._client.close()

    def _end(self, kind: str, event: dict) -> None:
        job_id = event.get("job_id")
        if kind in self._also and job_id in self.job_ids:
            with self._seen_changed:
                self.seen.setdefault((job_id, kind), time.perf_counter())
                self._seen_changed.notify_all()
        if kind in TERMINAL_EVENTS and job_id in self.job_ids and job_id not in self.ended:
            self.ended[job_id] = time.perf_counter()
            if kind != "job.completed":
                self.errors[job_id] = f"{kind[4:]}: {event.get('error')}"

    def wait_for(self, job_id: str, kind: str, timeout: float) -> float:
        """When the first ``kind`` event of ``job_id`` arrived (``kind`` one of ``also``); raises if the
        job ended without one, or none came within ``timeout`` seconds."""
        with self._seen_changed:
            got = self._seen_changed.wait_for(
                lambda: (job_id, kind) in self.seen or job_id in self.ended or self._done.is_set(), timeout
            )
            if (job_id, kind) in self.seen:
                return self.seen[(job_id, kind)]
        if not got:
            raise TimeoutError(f"no {kind} of {job_id} within {timeout:.0f} s")
        raise RuntimeError(f"{job_id} had no {kind}: {self.errors.get(job_id, 'ended')} {self._failure!r}")

    def wait(self) -> dict[str, float]:
        if not self._done.wait(self._timeout):
            raise TimeoutError(f"{len(self.job_ids) - len(self.ended)} jobs did not end")
        if self.errors:
            raise RuntimeError(f"jobs did not complete: {self.errors}")
        if len(self.ended) < len(self.job_ids):
            raise RuntimeError(f"the event stream ended early: {self._failure!r}")
        return self.ended


def run_jobs(api: httpx.Client, bodies: list[dict], timeout: float = 900) -> tuple[float, list[float]]:
    """Submit ``bodies`` (each given a job_id of the bench's unless it has one) and follow them to
    completion on the event stream: (perf_counter at the first submit, seconds from it until each job
    had completed)."""
    ids = [body.get("job_id") or f"bench-{uuid.uuid4().hex[:16]}" for body in bodies]
    watch = JobWatch(str(api.base_url), ids, timeout)
    t0 = time.perf_counter()
    for job_id, body in zip(ids, bodies, strict=True):
        submit(api, {**body, "job_id": job_id})
    ended = watch.wait()
    return t0, [ended[j] - t0 for j in ids]


def run_job(api: httpx.Client, body: dict, timeout: float = 900) -> float:
    """Seconds from submitting one job until its completion arrived on the event stream."""
    return run_jobs(api, [body], timeout)[1][0]


def page_total(api: httpx.Client, path: str) -> int | None:
    """``total`` of a list endpoint, or None when it does not answer 200 (e.g. a 503)."""
    r = api.get(path)
    return r.json()["total"] if r.status_code == 200 else None


# --- CPU and memory of the services (psutil is not installed: /proc) ------------------------------
def proc_cpu_s(pid: int) -> float:
    """CPU seconds (user + system) a process has used so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def proc_status_kib(pid: int, field: str) -> int | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except OSError:
        return None
    return None


def reset_peak_rss(pid: int) -> bool:
    """Reset VmHWM to the current RSS (Linux ≥ 4.0: ``echo 5 > /proc/<pid>/clear_refs``)."""
    try:
        Path(f"/proc/{pid}/clear_refs").write_text("5")
        return True
    except OSError:
        return False


class RssSampler:
    """Peak RSS of some processes over a phase: VmHWM after resetting it at the start, and, in case the
    reset is not allowed, the highest VmRSS sampled every 50 ms."""

    def __init__(self, pids: dict[str, int]) -> None:
        self.pids = pids
        self.before = {n: proc_status_kib(p, "VmRSS") or 0 for n, p in pids.items()}
        self.reset = {n: reset_peak_rss(p) for n, p in pids.items()}
        self.sampled = dict(self.before)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(0.05):
            for n, p in self.pids.items():
                self.sampled[n] = max(self.sampled[n], proc_status_kib(p, "VmRSS") or 0)

    def stop(self) -> dict[str, dict[str, int]]:
        self._stop.set()
        self._thread.join()
        out = {}
        for n, p in self.pids.items():
            hwm = proc_status_kib(p, "VmHWM") if self.reset[n] else None
            out[n] = {"before_kib": self.before[n], "peak_kib": max(hwm or 0, self.sampled[n])}
        return out


# --- a subprocess on a random loopback port -------------------------------------------------
class Server:
    """``python -m <module>`` with ``BENCH_PORT`` set, up once ``GET <health>`` answers 200."""

    def __init__(self, module: str, env: dict[str, str] | None = None, health: str = "/health") -> None:
        self.port = free_port()
        full_env = {
            **os.environ,
            **(env or {}),
            "BENCH_PORT": str(self.port),
            "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])),
        }
        self.popen = subprocess.Popen(
            [sys.executable, "-m", module],
            env=full_env,
            cwd=REPO,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        url = f"http://127.0.0.1:{self.port}{health}"
        try:
            wait_until(lambda: urllib.request.urlopen(url, timeout=2).status == 200, 30, module, self.popen)
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        if self.popen.poll() is None:
            self.popen.terminate()
            try:
                self.popen.wait(15)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait()

    def __enter__(self) -> Server:
        return self

    def __exit__(self, *exc) -> None:
        self.stop()
