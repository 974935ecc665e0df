"""The catalog's side of retries, attempts and queue classes, on real SQLite and PostgreSQL databases:
attempts recorded once each, a job's log, the jobs a retry filter matches with the requests a retry
publishes again; and through the handlers, every subject of the jobs stream that carries them."""

from __future__ import annotations

import msgspec
import pytest
from faststream.nats import NatsBroker, TestNatsBroker

from mpr_catalog.batches import handle_job_events
from mpr_catalog.db import Database, make_engine
from mpr_catalog.deps import CatalogDeps
from mpr_catalog.ingest import JOBS, Ingestor
from mpr_catalog.queries import MAX_REPLY_BYTES
from mpr_catalog.repository import Catalog
from mpr_catalog.router import register
from mpr_common import subjects as s
from mpr_common.catalog_requests import FindJobRequests, GetJob, GetJobLog
from mpr_common.codec import encode
from mpr_common.errors import NotFound
from mpr_common.events import (
    JobAttempt,
    JobFailed,
    JobMoved,
    JobRequested,
    JobRetried,
)
from tests.unit.catalog.test_catalog_handlers import FakeNats, NoWait, ask


class Ctx:
    def __init__(self, db: Database) -> None:
        self.db = db
        self.ingest = Ingestor(db)
        self.catalog = Catalog(db)


@pytest.fixture(params=["sqlite", "postgresql"])
async def ctx(request, migrated_db):
    engine = make_engine(migrated_db(request.param))
    yield Ctx(Database(engine))
    await engine.dispose()


def request(job_id: str, key: str = "in/a.mp4", kind: str = "audio", **kw) -> JobRequested:
    return JobRequested(job_id=job_id, kind=kind, source_key=key, **kw)


def attempt(job_id: str, retry: int, n: int, outcome: str = "failed", **kw) -> JobAttempt:
    return JobAttempt(
        job_id=job_id,
        retry=retry,
        attempt=n,
        worker=kw.pop("worker", "t1"),
        started_at=10.0 * n + 100 * retry,
        ended_at=10.0 * n + 100 * retry + 2.5,
        outcome=outcome,
        reason=kw.pop("reason", "ffmpeg"),
        error=kw.pop("error", "FFmpeg exited with 1"),
        log=kw.pop("log", "Invalid data found when processing input"),
    )


async def test_each_attempt_is_recorded_once_and_the_log_lists_them_in_order(ctx):
    await ctx.ingest.jobs([request("j"), attempt("j", 1, 1, "completed", reason=None, error=None, log="")])
    await ctx.ingest.jobs([attempt("j", 0, 2), attempt("j", 0, 1, "retrying", reason="storage")])
    # A redelivered report, even one that differs, does not replace the first.
    await ctx.ingest.jobs([attempt("j", 0, 1, "failed", worker="t9"), attempt("j", 0, 1, worker="t8")])
    found = await ctx.catalog.job_log("j")
    assert found is not None
    job, attempts = found
    assert job.id == "j"
    assert [(a.retry, a.attempt, a.outcome, a.worker) for a in attempts] == [
        (0, 1, "retrying", "t1"),
        (0, 2, "failed", "t1"),
        (1, 1, "completed", "t1"),
    ]
    first = attempts[0]
    assert (first.started_at, first.ended_at, first.reason) == (10.0, 12.5, "storage")
    assert first.log == "Invalid data found when processing input"
    assert await ctx.catalog.job_log("nope") is None


async def test_attempts_of_a_job_not_yet_requested_are_kept(ctx):
    await ctx.ingest.jobs([attempt("early", 0, 1, worker="w" * 300)])
    assert await ctx.catalog.job_log("early") is None  # no job row yet
    await ctx.ingest.jobs([request("early")])
    found = await ctx.catalog.job_log("early")
    assert found is not None and [a.worker for a in found[1]] == ["w" * 128]


async def failed(ctx, job_id: str, reason: str = "source", at: float = 50.0, **kw) -> None:
    await ctx.ingest.jobs(
        [request(job_id, **kw), JobFailed(job_id=job_id, error="broken", reason=reason, at=at)]
    )


async def test_a_retry_filter_matches_by_status_kind_reason_end_and_source_prefix(ctx):
    await failed(ctx, "a", key="night/a.mp4", at=50.0)
    await failed(ctx, "b", key="night/b.mp4", reason="ffmpeg", at=60.0)
    await failed(ctx, "c", key="day/c.mp4", at=70.0)
    await failed(ctx, "d", key="night/d.mp4", at=80.0, kind="thumbnail")
    await failed(ctx, "e", key="night%/e.mp4", at=90.0)  # LIKE's wildcard in a key is a plain character
    await ctx.ingest.jobs([request("q", key="night/q.mp4")])  # queued

    async def ids(**kw) -> list[str]:
        return [j.id for j, _ in await ctx.catalog.job_requests(100, **kw)]

    assert await ids(status="failed") == ["a", "b", "c", "d", "e"]
    assert await ids(status="failed", prefix="night/") == ["a", "b", "d"]
    assert await ids(status="failed", prefix="night%") == ["e"]
    assert await ids(status="failed", reason="source", kind="audio") == ["a", "c", "e"]
    assert await ids(status="failed", since=70.0) == ["c", "d", "e"]
    assert [j.id for j, _ in await ctx.catalog.job_requests(2, status="failed")] == ["a", "b"]
    assert await ids(status="queued") == ["q"]


async def test_the_recorded_request_is_the_newest_generations_with_the_current_queue_class(ctx):
    first = request("r", template="clips@2", rule="rule-1")
    await ctx.ingest.jobs([first, JobFailed(job_id="r", error="x", reason="source")])
    [(job, req)] = await ctx.catalog.job_requests(10, job_id="r")
    assert req == first and (job.status, job.retries, job.template, job.rule) == (
        "failed",
        0,
        "clips@2",
        "rule-1",
    )
    again = msgspec.structs.replace(first, retry=1)
    await ctx.ingest.jobs([JobRetried(job_id="r", retry=1), again, JobMoved(job_id="r", priority="bulk")])
    [(job, req)] = await ctx.catalog.job_requests(10, job_id="r")
    assert req == again and (job.status, job.retries, job.priority) == ("queued", 1, "bulk")


async def test_children_are_matched_by_id_only(ctx):
    child = request("p-720p", kind="rendition", parent_id="p", rendition="720p", preset="hls-ladder")
    await ctx.ingest.jobs([child, JobFailed(job_id="p-720p", error="x", reason="ffmpeg")])
    assert await ctx.catalog.job_requests(10, status="failed") == []
    [(job, req)] = await ctx.catalog.job_requests(10, job_id="p-720p")
    assert job.parent_id == "p" and req.parent_id == "p"


async def test_rows_recorded_before_requests_were_kept_get_a_request_from_their_columns(ctx):
    await failed(ctx, "old", key="in/old.mp4", priority="urgent")

    async def forget(conn) -> None:
        await conn.execute(JOBS.update().where(JOBS.c.id == "old").values(request_json=None))

    await ctx.db.transaction(forget)
    [(job, req)] = await ctx.catalog.job_requests(10, job_id="old")
    assert (req.job_id, req.kind, req.source_key, req.priority, req.retry) == (
        "old",
        "audio",
        "in/old.mp4",
        "urgent",
        0,
    )
    assert req.requested_at == job.created_at


# --- through the handlers (SQLite) ------------------------------------------------------------
@pytest.fixture
async def deps(migrated_db):
    engine = make_engine(migrated_db("sqlite"))
    db = Database(engine)
    nats = FakeNats()
    d = CatalogDeps(
        catalog=Catalog(db), ingestor=Ingestor(db), submit_probe=lambda a: None, barrier=NoWait(), js=nats
    )
    d.nats = nats  # type: ignore[attr-defined]
    yield d
    await engine.dispose()


@pytest.fixture
async def queries(deps):
    broker = NatsBroker()
    register(broker, lambda: deps)
    async with TestNatsBroker(broker) as br:
        yield br


async def test_the_jobs_stream_carries_attempts_retries_moves_and_every_queue_class(deps, queries):
    n = deps.nats
    batch = [
        n.delivery(s.requested_subject("urgent"), encode(request("u"))),
        n.delivery(s.requested_subject("bulk"), encode(request("b", priority="bulk"))),
        n.delivery(s.JOB_FAILED, encode(JobFailed(job_id="u", error="bad", reason="source"))),
        n.delivery(s.JOB_ATTEMPT, encode(attempt("u", 0, 1, reason="source"))),
        n.delivery(s.JOB_RETRIED, encode(JobRetried(job_id="u", retry=1))),
        n.delivery(s.JOB_MOVED, encode(JobMoved(job_id="b", priority="urgent"))),
    ]
    await handle_job_events(deps, batch)
    assert n.published == []  # nothing dead-lettered
    assert len(n.settled) == len(batch)
    log = await ask(queries, GetJobLog(id="u"))
    assert log.job is not None and (log.job.status, log.job.retries) == ("queued", 1)
    assert [(a.attempt, a.reason) for a in log.attempts] == [(1, "source")]
    moved = await ask(queries, GetJob(id="b"))
    assert moved.job is not None and moved.job.priority == "urgent"
    with pytest.raises(NotFound):
        await ask(queries, GetJobLog(id="nope"))


async def test_a_child_look_alike_on_a_queue_class_subject_is_dead_lettered(deps):
    n = deps.nats
    look_alike = request("x-720p", kind="rendition", parent_id="x", rendition="720p")
    await handle_job_events(deps, [n.delivery(s.requested_subject("urgent"), encode(look_alike))])
    [(subject, _)] = n.published
    assert subject == s.DLQ_CATALOG
    await handle_job_events(deps, [n.delivery(s.child_subject("bulk"), encode(look_alike))])
    assert len(n.published) == 1 and await deps.catalog.get_job("x-720p") is not None


async def test_the_requests_query_answers_by_id_or_filter_within_one_message(deps, queries):
    n = deps.nats
    big_key = "k/" + "x" * 1000 + ".mp4"
    for i in range(12):
        job_id = f"f{i:02d}"
        await handle_job_events(
            deps,
            [
                n.delivery(s.JOB_REQUESTED, encode(request(job_id, key=big_key))),
                n.delivery(
                    s.JOB_FAILED, encode(JobFailed(job_id=job_id, error="e" * 80_000, reason="ffmpeg"))
                ),
            ],
        )
    one = await ask(queries, FindJobRequests(id="f03"))
    assert [j.id for j in one.jobs] == ["f03"] and one.requests[0].source_key == big_key
    many = await ask(queries, FindJobRequests(status="failed", limit=1000))
    assert many.total == 12 and 0 < len(many.jobs) < 12  # cut to what fits one message
    assert len(encode(many)) <= MAX_REPLY_BYTES + 1000
    assert [j.id for j in many.jobs] == [f"f{i:02d}" for i in range(len(many.jobs))]
    assert [r.job_id for r in many.requests] == [j.id for j in many.jobs]
    with pytest.raises(NotFound):
        await ask(queries, FindJobRequests(id="nope"))
