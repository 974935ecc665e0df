"""Job leases on real processes: a transcoder frozen (SIGSTOP, its FFmpeg with it, as a paused host or
container is) past the ack wait has its job redelivered to another replica while it still holds it.
The other replica does not start it; once the frozen one resumes it completes the job, once. Frozen
longer than its lease, the job is taken over and the old holder, resumed, stops and reports nothing."""

from __future__ import annotations

import contextlib
import json
import os
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest

from mpr_common import subjects as s
from mpr_devstack.servers import Proc
from tests.system.conftest import wait_for, wait_job
from tests.system.faults import (
    client,
    completed_events,
    output_objects,
    slow_s3,
    start_long_job,
    stream_events,
)

pytestmark = pytest.mark.system

NOT_STARTED = "this delivery is not started"


def log_lines(st, name: str, job_id: str, text: str) -> list[dict]:
    path = st.workdir / "logs" / f"{name}.log"
    out = []
    for line in path.read_text().splitlines() if path.exists() else []:
        try:
            rec = json.loads(line)
        except ValueError:
            continue
        if rec.get("job_id") == job_id and text in rec.get("msg", ""):
            out.append(rec)
    return out


def ffmpeg_children(pid: int) -> list[int]:
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:  # gone meanwhile
            continue
        name, rest = text[text.index("(") + 1 : text.rindex(")")], text[text.rindex(")") + 2 :].split()
        if name == "ffmpeg" and int(rest[1]) == pid:
            found.append(int(stat.parent.name))
    return found


@contextlib.contextmanager
def frozen(proc: Proc) -> Iterator[None]:
    """``proc`` and the FFmpeg it runs (in a session of its own) stopped, then continued. (Left
    running, a frozen worker's FFmpeg would encode on, to a pipe nobody reads, for nothing.)"""
    proc.signal(signal.SIGSTOP)  # first: a stopped worker starts no other FFmpeg
    children = ffmpeg_children(proc.popen.pid)
    for pid in children:
        os.kill(pid, signal.SIGSTOP)
    try:
        yield
    finally:
        for pid in children:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGCONT)
        proc.signal(signal.SIGCONT)


def runs_of(st, job_id: str) -> set[tuple[str, int]]:
    """Every run that reported progress or an outcome: (worker, attempt)."""
    events = [
        e
        for subject in (s.JOB_PROGRESS, s.JOB_COMPLETED)
        for e in stream_events(st.nats.url, s.JOBS_STREAM, subject)
        if e["job_id"] == job_id
    ]
    return {(e["worker"], e["attempt"]) for e in events}


@pytest.fixture
def st(make_stack):
    # An ack wait far below the time a transcoder stays frozen: its job is redelivered meanwhile.
    return make_stack(transcoders=0, TRANSCODER_ACK_WAIT="3")


@pytest.fixture
def slow(st, media_dir) -> Iterator[dict[str, str]]:
    """The environment of a replica that runs the long job (faults.slow_s3)."""
    with slow_s3(st, media_dir) as env:
        yield env


def test_a_job_redelivered_while_its_worker_runs_it_runs_once_and_a_lapsed_lease_is_taken_over(
    st, slow, media_dir
):
    api = client(st)

    # 1. Frozen within its lease (60 s): the redelivery waits, the holder resumes and completes it.
    st.start_service("transcoder", "transcoder-1", env={"TRANSCODER_LEASE_SECONDS": "60", **slow})
    job_id = start_long_job(st, api, media_dir)
    holder = st.services["transcoder-1"]
    with frozen(holder):
        st.start_service("transcoder", "transcoder-2", env={"TRANSCODER_LEASE_SECONDS": "8", **slow})
        wait_for(
            lambda: log_lines(st, "transcoder-2", job_id, NOT_STARTED), 60, what="the redelivery to wait"
        )
    done = wait_job(api, job_id, timeout=120)["job"]
    assert done["status"] == "completed" and done["worker"] == "transcoder-1", done
    assert runs_of(st, job_id) == {("transcoder-1", 1)}  # transcoder-2 never started it
    assert len(completed_events(st, job_id)) == 1 and output_objects(st, done) == [done["output_key"]]
    holder.signal(signal.SIGTERM)
    assert holder.popen.wait(30) == 0

    # 2. Frozen past its lease (8 s): the other replica takes it over; the old holder, resumed, stops.
    st.start_service("transcoder", "transcoder-3", env={"TRANSCODER_LEASE_SECONDS": "8", **slow})
    job_id = start_long_job(st, api, media_dir)
    first = api.get(f"/api/jobs/{job_id}").json()["job"]["worker"]
    other = "transcoder-3" if first == "transcoder-2" else "transcoder-2"
    with frozen(st.services[first]):
        wait_for(
            lambda: api.get(f"/api/jobs/{job_id}").json()["job"]["worker"] == other,
            90,
            what=f"{other} to take the job over",
        )
    assert log_lines(st, other, job_id, NOT_STARTED)  # it waited for the lease to lapse first
    wait_for(lambda: log_lines(st, first, job_id, "not reported by this run"), 60, what=f"{first} to give up")
    # The old run stopped without a word; the new one is the job now (cancelled here: a second
    # whole encode would prove nothing more).
    assert api.post(f"/api/jobs/{job_id}/cancel").status_code in (200, 202)
    done = wait_job(api, job_id, timeout=120)["job"]
    assert done["status"] == "cancelled" and done["worker"] == other, done
    assert not completed_events(st, job_id) and not log_lines(st, first, job_id, "job completed")
    assert {w for w, _ in runs_of(st, job_id)} == {first, other}  # the old run, stopped, and the new
