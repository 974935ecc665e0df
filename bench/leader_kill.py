"""Exactly once under leader kills: a three-node JetStream cluster (streams replicated three times), two
transcoders, and round after round of jobs submitted around a ``kill -9`` of a leader (the jobs stream's,
or the job-state bucket's) that is then restarted. Every round counts the jobs lost (not completed) and
the duplicate runs: a run is one (worker, attempt) that reported progress or an outcome for a job, so
a job started twice counts once more even if only one run completed it.

    uv run python -m bench.leader_kill --rounds 20      (make bench-leader-kill)

The cluster test (tests/system/test_cluster.py) runs one round of the same code."""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import httpx
import nats
from nats.aio.msg import Msg
from nats.errors import TimeoutError as NatsTimeout
from nats.js import JetStreamContext
from nats.js.errors import ServiceUnavailableError

from mpr_common import subjects as s
from mpr_devstack.servers import NatsCluster
from mpr_devstack.stack import DEV_API_TOKEN, Stack

from .common import make_source

JOB_STATE_STREAM = f"KV_{s.JOB_STATE_KV}"
# What the stack runs with: an ack wait far shorter than an election (jobs are redelivered while they
# run), retries fast, deliveries enough that an election's redeliveries do not exhaust them.
CLUSTER_ENV = {
    "TRANSCODER_ACK_WAIT": "4",
    "TRANSCODER_RETRY_BASE": "0.5",
    "TRANSCODER_RETRY_MAX": "4",
    "TRANSCODER_MAX_DELIVER": "20",
    "TRANSCODER_SHUTDOWN_GRACE": "10",
    "NATS_STREAM_REPLICAS": "3",
}
JOBS_BEFORE, JOBS_AFTER = 6, 4


@dataclass
class Round:
    target: str  # the stream whose leader was killed
    killed: str
    jobs: list[str]
    lost: list[str] = field(default_factory=list)
    duplicates: dict[str, int] = field(default_factory=dict)  # job -> runs beyond the first
    completions: dict[str, int] = field(default_factory=dict)  # job -> completed events beyond one
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return not (self.lost or self.duplicates or self.completions)


def wait_for(fn: Callable[[], object], timeout: float, what: str, interval: float = 0.25) -> object:
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = fn()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"timed out waiting for {what}; last value: {last!r}")


async def _leader(url: str, stream: str) -> tuple[str, list[dict]]:
    nc = await nats.connect(url)
    try:
        info = await nc.jetstream().stream_info(stream)
        assert info.cluster is not None
        replicas = [
            {"name": r.name, "current": r.current, "offline": r.offline} for r in info.cluster.replicas or []
        ]
        return info.cluster.leader or "", replicas
    finally:
        await nc.close()


def leader(st: Stack, stream: str) -> tuple[str, list[dict]]:
    assert st.nats is not None
    return asyncio.run(_leader(st.nats.url, stream))


def leader_name(st: Stack, stream: str) -> str:
    """The stream's leader, or "" while it has none (an election: the request times out)."""
    try:
        return leader(st, stream)[0]
    except Exception:
        return ""


def healthy(st: Stack, stream: str) -> bool:
    """A leader and every other replica current: the stream can lose its leader again."""
    try:
        name, replicas = leader(st, stream)
    except Exception:
        return False
    return bool(name) and len(replicas) == 2 and all(r["current"] and not r["offline"] for r in replicas)


async def _fetch(sub: JetStreamContext.PullSubscription, patience: float = 30.0) -> list[Msg] | None:
    """The next batch, or None when the stream has no more. A consumer made a moment ago on a
    replicated stream may answer 503 until its leader is placed: asked again, not taken as the end."""
    deadline = time.monotonic() + patience
    while True:
        try:
            return await sub.fetch(512, timeout=1)
        except (TimeoutError, NatsTimeout):
            return None
        except ServiceUnavailableError:
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.2)


async def _events(url: str, subjects: list[str]) -> list[dict]:
    nc = await nats.connect(url)
    try:
        js = nc.jetstream()
        out: list[dict] = []
        for subject in subjects:
            sub = await js.pull_subscribe(subject, stream=s.JOBS_STREAM)
            while (msgs := await _fetch(sub)) is not None:
                for m in msgs:
                    out.append({"subject": m.subject, **json.loads(m.data)})
                    await m.ack()
            await sub.unsubscribe()
        return out
    finally:
        await nc.close()


def events(st: Stack, subjects: list[str]) -> list[dict]:
    assert st.nats is not None
    return asyncio.run(_events(st.nats.url, subjects))


def api_client(st: Stack) -> httpx.Client:
    return httpx.Client(base_url=st.api_url, headers={"Authorization": f"Bearer {DEV_API_TOKEN}"}, timeout=60)


def start_stack(workdir: Path, extra_env: dict[str, str] | None = None) -> Stack:
    st = Stack(workdir, transcoders=2, nats_nodes=3, extra_env={**CLUSTER_ENV, **(extra_env or {})})
    st.start()
    assert isinstance(st.nats, NatsCluster) and len(st.nats.nodes) == 3
    return st


def upload_source(st: Stack, media: Path) -> str:
    key = f"cluster-{uuid.uuid4().hex[:6]}/a.mp4"
    st.s3_client().upload_file(str(media), st.bucket_in, key)
    return key


def submit(api: httpx.Client, key: str, job_id: str) -> None:
    body = {"kind": "thumbnail", "source_key": key, "job_id": job_id}
    # During an election the queue may not confirm (503): the same job_id is retried, never doubled.
    wait_for(lambda: api.post("/api/jobs", json=body).status_code in (200, 202), 60, f"{job_id} stored")


def kill_leader_while_submitting(
    st: Stack, api: httpx.Client, key: str, target: str, before: list[str], after: list[str]
) -> str:
    """``before`` submitted, the leader of ``target`` killed with them in flight, ``after`` submitted
    during the election, the killed node restarted once another leads; returns the killed node."""
    assert isinstance(st.nats, NatsCluster)
    for job_id in before:
        submit(api, key, job_id)
    killed, _ = leader(st, target)
    node = st.nats.node(killed)
    node.kill()  # kill -9 the leader with jobs in flight
    for job_id in after:
        submit(api, key, job_id)
    wait_for(lambda: (name := leader_name(st, target)) and name != killed, 60, f"a new leader of {target}")
    node.start()  # same port, same store: it catches up as a follower
    return killed


def ended(api: httpx.Client, job_id: str) -> dict | None:
    r = api.get(f"/api/jobs/{job_id}")
    job = r.json()["job"] if r.status_code == 200 else None
    return job if job and job["status"] in ("completed", "failed", "cancelled") else None


def not_completed(api: httpx.Client, jobs: list[str], timeout: float) -> list[str]:
    """The jobs that did not end completed within ``timeout`` (for all of them together)."""
    deadline = time.monotonic() + timeout
    lost: list[str] = []
    for job_id in jobs:
        try:
            job = wait_for(partial(ended, api, job_id), max(1.0, deadline - time.monotonic()), job_id)
        except AssertionError:
            job = None
        if not isinstance(job, dict) or job["status"] != "completed":
            lost.append(job_id)
    return lost


def extra_runs(st: Stack, jobs: list[str]) -> tuple[dict[str, int], dict[str, int]]:
    """Per job, the runs beyond the first and the completed events beyond one (jobs with none left out)."""
    # Runs that reported anything: a watcher that was not started reports nothing.
    seen = events(st, [s.JOB_PROGRESS, s.JOB_COMPLETED, s.JOB_ATTEMPT])
    runs: dict[str, set[tuple[str, int]]] = {}
    completed: Counter[str] = Counter()
    for e in seen:
        if e.get("job_id") not in jobs:
            continue
        runs.setdefault(e["job_id"], set()).add((e.get("worker") or "", int(e.get("attempt") or 0)))
        if e["subject"] == s.JOB_COMPLETED:
            completed[e["job_id"]] += 1
    duplicates = {j: len(runs[j]) - 1 for j in jobs if len(runs.get(j, ())) > 1}
    completions = {j: completed[j] - 1 for j in jobs if completed[j] > 1}
    return duplicates, completions


def one_round(st: Stack, api: httpx.Client, key: str, target: str, timeout: float = 180) -> Round:
    """Jobs submitted, the leader of ``target`` killed with jobs in flight, more jobs submitted during
    the election, the killed node restarted; then every job's outcome and runs counted."""
    began = time.monotonic()
    tag = uuid.uuid4().hex[:6]
    before = [f"before-{i}-{tag}" for i in range(JOBS_BEFORE)]
    after = [f"after-{i}-{tag}" for i in range(JOBS_AFTER)]
    killed = kill_leader_while_submitting(st, api, key, target, before, after)
    result = Round(target, killed, before + after)
    result.lost = not_completed(api, result.jobs, timeout)
    result.duplicates, result.completions = extra_runs(st, result.jobs)
    wait_for(lambda: all(healthy(st, t) for t in (s.JOBS_STREAM, JOB_STATE_STREAM)), 120, "replicas current")
    result.seconds = time.monotonic() - began
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument(
        "--target",
        choices=("jobs", "job-state", "both"),
        default="both",
        help="whose leader is killed: the jobs stream's, the job-state bucket's, or each in turn",
    )
    parser.add_argument("--keep", action="store_true", help="keep the work dir (logs) afterwards")
    args = parser.parse_args(argv)
    targets = {"jobs": [s.JOBS_STREAM], "job-state": [JOB_STATE_STREAM]}.get(
        args.target, [s.JOBS_STREAM, JOB_STATE_STREAM]
    )
    workdir = Path(tempfile.mkdtemp(prefix="mpr-leader-kill-"))
    make_source(workdir / "sample.mp4", 10, "640x360", "1M")
    st = start_stack(workdir / "stack")
    rounds: list[Round] = []
    try:
        api = api_client(st)
        key = upload_source(st, workdir / "sample.mp4")
        for n in range(args.rounds):
            r = one_round(st, api, key, targets[n % len(targets)])
            rounds.append(r)
            print(
                f"round {n + 1:2d}: killed {r.killed} ({r.target} leader): {len(r.jobs)} jobs, "
                f"lost {len(r.lost)}, duplicate runs {sum(r.duplicates.values())}, "
                f"duplicate completions {sum(r.completions.values())} ({r.seconds:.0f} s)"
                + ("" if r.ok else f"  lost={r.lost} dup={r.duplicates} done={r.completions}"),
                flush=True,
            )
    finally:
        st.stop()
        if not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)
        else:
            print(f"work dir: {workdir}")
    jobs = sum(len(r.jobs) for r in rounds)
    lost = sum(len(r.lost) for r in rounds)
    dups = sum(sum(r.duplicates.values()) + sum(r.completions.values()) for r in rounds)
    print(f"{len(rounds)} rounds, {jobs} jobs: {dups} duplicates, {lost} lost")
    return 0 if rounds and all(r.ok for r in rounds) and len(rounds) == args.rounds else 1


if __name__ == "__main__":
    sys.exit(main())
