"""Queue classes on the real system, with ONE transcoder running one job at a time (so the order jobs run in
is the order it chose): urgent jobs overtake queued bulk ones while bulk still progresses, a paused
class starts nothing until it resumes, and a queued job moved to another class runs next, once."""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Iterator

import httpx
import nats
import pytest

from mpr_common import subjects as s
from mpr_devstack.stack import DEV_API_TOKEN, Stack
from tests.media import make_video
from tests.system.conftest import wait_for, wait_job

pytestmark = pytest.mark.system

SHARE_EVERY = 3  # every third slot goes to the class that waited longest
SOURCE = "priorities/tiny.mp4"


@pytest.fixture(scope="module")
def st(tmp_path_factory) -> Iterator[Stack]:
    work = tmp_path_factory.mktemp("priorities")
    stack = Stack(
        work,
        transcoders=1,
        extra_env={"TRANSCODER_CONCURRENCY": "1", "TRANSCODER_SHARE_EVERY": str(SHARE_EVERY)},
    )
    try:
        stack.start()
        make_video(work / "tiny.mp4", seconds=2, size="160x90", rate=10)
        stack.s3_client().upload_file(str(work / "tiny.mp4"), stack.bucket_in, SOURCE)
        yield stack
    finally:
        stack.stop()


@pytest.fixture(scope="module")
def api(st: Stack) -> Iterator[httpx.Client]:
    headers = {"Authorization": f"Bearer {DEV_API_TOKEN}"}
    with httpx.Client(base_url=st.api_url, headers=headers, timeout=30) as client:
        yield client


def submit(api: httpx.Client, job_id: str, priority: str) -> None:
    body = {"kind": "thumbnail", "source_key": SOURCE, "start": 0.5, "priority": priority, "job_id": job_id}
    r = api.post("/api/jobs", json=body)
    assert r.status_code == 202, r.text


def queues(api: httpx.Client) -> dict[str, dict]:
    r = api.get("/api/queues")
    assert r.status_code == 200, r.text
    return {q["priority"]: q for q in r.json()["queues"]}


def job(api: httpx.Client, job_id: str) -> dict:
    return api.get(f"/api/jobs/{job_id}").json()["job"]


def finished(api: httpx.Client, ids: list[str]) -> list[str]:
    """``ids`` completed, in the order they finished (one at a time: the order they ran)."""
    done = [wait_job(api, i, timeout=90)["job"] for i in ids]
    assert all(j["status"] == "completed" for j in done), done
    return [j["id"] for j in sorted(done, key=lambda j: j["finished_at"])]


def transcoder_jobs(st: Stack, outcome: str) -> float:
    text = httpx.get(f"http://127.0.0.1:{st.metrics_ports['transcoder-1']}/metrics", timeout=5).text
    lines = [
        line
        for line in text.splitlines()
        if line.startswith("mpr_transcoder_jobs_total{") and f'outcome="{outcome}"' in line
    ]
    return sum(float(line.rsplit(" ", 1)[1]) for line in lines)


def test_urgent_jobs_overtake_queued_bulk_ones_and_bulk_still_progresses(st, api):
    assert api.post("/api/queues/pause").status_code == 200  # let the queues fill before anything runs
    bulk = [f"bulk-{i}" for i in range(6)]
    urgent = [f"urgent-{i}" for i in range(4)]
    for i in bulk:
        submit(api, i, "bulk")
    for i in urgent:
        submit(api, i, "urgent")
    try:
        # A pull that was already waiting when the pause came may have been handed a job: the transcoder
        # gives it back unstarted, so every job ends up waiting in its queue.
        state = wait_for(
            lambda: (
                (q := queues(api))["bulk"]["pending"] == 6
                and q["urgent"]["pending"] == 4
                and {c["in_flight"] for c in q.values()} == {0}
                and q
            ),
            15,
            what="every job waiting in the paused queues",
        )
        assert (
            state["bulk"]["paused"]
            and state["bulk"]["oldest_waiting_seconds"] >= state["urgent"]["oldest_waiting_seconds"]
        )
    finally:  # the next tests count runs: leave nothing paused behind
        assert api.post("/api/queues/resume").status_code == 200

    order = finished(api, bulk + urgent)
    last_urgent = max(order.index(i) for i in urgent)
    bulk_before = sum(1 for i in order[:last_urgent] if i in bulk)
    # Urgent first, but every SHARE_EVERY-th slot goes to bulk, which has waited longest: bulk progresses
    # while urgent jobs wait, at most one bulk job for every SHARE_EVERY - 1 urgent ones.
    assert 1 <= bulk_before <= math.ceil(len(urgent) / (SHARE_EVERY - 1)), order
    assert order[-(len(bulk) - bulk_before) :] == [i for i in bulk if i not in order[:last_urgent]]
    assert {q["pending"] for q in queues(api).values()} == {0}


def test_a_paused_class_starts_nothing_until_it_resumes(st, api):
    r = api.post("/api/queues/bulk/pause")
    assert [q["paused"] for q in r.json()["queues"]] == [False, False, True]
    submit(api, "paused-0", "bulk")
    submit(api, "paused-1", "bulk")
    submit(api, "free-0", "normal")  # other classes run on
    assert wait_job(api, "free-0", timeout=60)["job"]["status"] == "completed"
    try:
        time.sleep(1.5)  # a few idle rounds of the transcoder
        assert {job(api, i)["status"] for i in ("paused-0", "paused-1")} == {"queued"}
        # A pull that was already waiting when the pause came may have been handed one of them: the
        # transcoder gives it back unstarted, so both end up waiting in the queue.
        wait_for(
            lambda: (q := queues(api)["bulk"])["paused"] and q["pending"] == 2 and q["in_flight"] == 0,
            30,
            what="both bulk jobs waiting in the paused queue",
        )
        assert {job(api, i)["status"] for i in ("paused-0", "paused-1")} == {"queued"}
    finally:  # the next tests count runs: leave nothing paused, and nothing of this test running, behind
        assert api.post("/api/queues/bulk/resume").status_code == 200
        ended = finished(api, ["paused-0", "paused-1"])
    assert ended == ["paused-0", "paused-1"]


def test_a_queued_job_moved_to_urgent_runs_next_and_only_once(st, api):
    completed, skipped = transcoder_jobs(st, "completed"), transcoder_jobs(st, "moved")
    api.post("/api/queues/bulk/pause")
    for i in range(3):
        submit(api, f"move-{i}", "bulk")
    r = api.post("/api/jobs/move-1/move", json={"priority": "urgent"})
    assert r.status_code == 200, r.text
    assert r.json()["job"]["priority"] == "urgent" and r.json()["job"]["status"] == "queued", r.text
    # Bulk is still paused: the moved job runs now, from its new class.
    assert wait_job(api, "move-1", timeout=60)["job"]["status"] == "completed"
    assert {job(api, i)["status"] for i in ("move-0", "move-2")} == {"queued"}
    assert api.post("/api/jobs/move-1/move", json={"priority": "bulk"}).status_code == 409
    api.post("/api/queues/bulk/resume")
    assert finished(api, ["move-0", "move-2"]) == ["move-0", "move-2"]
    # (The copy it left in bulk came after it had completed: acknowledged, not run.)

    # Moved while both classes are paused: the copy left in bulk comes first, and is skipped.
    api.post("/api/queues/urgent/pause")
    api.post("/api/queues/bulk/pause")
    submit(api, "skip-0", "bulk")
    assert api.post("/api/jobs/skip-0/move", json={"priority": "urgent"}).status_code == 200
    api.post("/api/queues/bulk/resume")
    wait_for(lambda: transcoder_jobs(st, "moved") == skipped + 1, 30, what="the copy left behind skipped")
    assert job(api, "skip-0")["status"] == "queued"
    api.post("/api/queues/urgent/resume")
    done = wait_job(api, "skip-0", timeout=60)["job"]
    assert done["status"] == "completed" and done["attempts"] == 1 and done["priority"] == "urgent"
    assert transcoder_jobs(st, "completed") == completed + 4  # four jobs, four runs
    assert {(q["pending"], q["in_flight"]) for q in queues(api).values()} == {(0, 0)}


def test_only_transcoders_publish_the_children_of_any_class(st):
    """Outside publishers and the API may queue jobs of every class, never a package's children."""

    async def publish(identity: str, subject: str) -> bool:
        errors: list[str] = []

        async def on_error(exc: Exception) -> None:
            errors.append(str(exc))

        nc = await nats.connect(st.nats.url_as(identity), error_cb=on_error, max_reconnect_attempts=0)
        try:
            await nc.publish(subject, b"{}")
            await nc.flush()
            await asyncio.sleep(0.2)
        finally:
            await nc.close()
        return not any("permissions violation" in e.lower() for e in errors)

    assert asyncio.run(publish("publisher", s.requested_subject("urgent")))
    assert asyncio.run(publish("publisher", s.requested_subject("bulk")))
    for identity in ("publisher", "api"):
        for priority in ("urgent", "bulk"):
            assert not asyncio.run(publish(identity, s.child_subject(priority))), (identity, priority)
