"""Retries, job logs and dead letters through the API in process (Litestar's test client), over a fake
NATS: what a retry publishes and in which order, what is refused and why, and how dead letters are
listed and replayed once. REST and GraphQL."""

from __future__ import annotations

from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

import msgspec
import pytest
from litestar.testing import TestClient
from nats.errors import TimeoutError as NatsTimeoutError
from nats.js.errors import NotFoundError

from mpr_api.app import services
from mpr_api.retries.dead_letters import DeadLetterService
from mpr_api.retries.service import RetryService
from mpr_api.settings import ApiSettings
from mpr_common import subjects as s
from mpr_common.catalog_requests import REQUEST_TYPES, JobLogReply, JobRequestsReply
from mpr_common.codec import decode, encode
from mpr_common.errors import NotFound, error_headers
from mpr_common.events import (
    DeadLetter,
    JobAttempt,
    JobRequested,
    JobRetried,
    JobView,
)
from mpr_common.jobstate import JobState
from tests.fakes import FakeJetStream, FakeKV, FakeNats, Msg
from tests.unit.api.inprocess import serving

TOKEN = "t0ken"


@dataclass
class Stored:
    subject: str
    data: bytes


@dataclass
class DlqJetStream(FakeJetStream):
    """Also MPR_DLQ, read by sequence as STREAM.MSG.GET does (a deleted message is NotFound)."""

    dlq: dict[int, Stored] = field(default_factory=dict)
    dlq_down: bool = False  # the stream does not answer

    async def stream_info(self, name):
        assert name == s.DLQ_STREAM
        if self.dlq_down:
            raise NatsTimeoutError
        seqs = sorted(self.dlq) or [0]
        return SimpleNamespace(state=SimpleNamespace(first_seq=seqs[0], last_seq=seqs[-1]))

    async def get_msg(self, stream, seq):
        assert stream == s.DLQ_STREAM
        if self.dlq_down:
            raise NatsTimeoutError
        if seq not in self.dlq:
            raise NotFoundError
        return SimpleNamespace(subject=self.dlq[seq].subject, data=self.dlq[seq].data, seq=seq)


@dataclass
class CatalogNats(FakeNats):
    """Answers the catalog's retry queries from ``recorded`` (job id → (view, request)) and its log
    query from ``attempts``."""

    recorded: dict[str, tuple[JobView, JobRequested]] = field(default_factory=dict)
    attempts: dict[str, list[JobAttempt]] = field(default_factory=dict)

    async def request(self, subject, payload, timeout=None) -> Msg:
        q: Any = decode(payload, REQUEST_TYPES[subject])
        self.requests.append((subject, q))
        if subject == s.CATALOG_JOB_REQUESTS:
            if q.id is not None:
                if q.id not in self.recorded:
                    return Msg(b"", error_headers(NotFound(f"job {q.id} not found")))
                found = [self.recorded[q.id]]
            else:
                found = [
                    pair
                    for pair in self.recorded.values()
                    if pair[0].status == q.status and not pair[0].parent_id
                ][: q.limit]
            reply = JobRequestsReply(
                jobs=[j for j, _ in found], requests=[r for _, r in found], total=len(found)
            )
            return Msg(encode(reply))
        if subject == s.CATALOG_JOB_LOG:
            if q.id not in self.recorded:
                return Msg(b"", error_headers(NotFound(f"job {q.id} not found")))
            return Msg(
                encode(JobLogReply(job=self.recorded[q.id][0], attempts=self.attempts.get(q.id or "", [])))
            )
        return await super().request(subject, payload, timeout)


def record(nc: CatalogNats, job_id: str, status: str = "failed", **view: Any) -> JobRequested:
    req = JobRequested(job_id=job_id, kind="audio", source_key=f"in/{job_id}.mp4", requested_by="team-a")
    nc.recorded[job_id] = (
        JobView(
            id=job_id,
            kind="audio",
            status=status,
            source_key=req.source_key,
            created_at=1.0,
            updated_at=2.0,
            error="source is not readable media" if status == "failed" else None,
            failure_reason="source" if status == "failed" else None,
            **view,
        ),
        req,
    )
    return req


@pytest.fixture
def api():
    settings = ApiSettings(tokens=frozenset({TOKEN}))
    nc = CatalogNats(js=DlqJetStream())
    job_kv, replays = FakeKV(), FakeKV()
    retries = RetryService(settings, nc, JobState(job_kv))
    state = {
        **services(settings, nc, job_kv, public_s3=None, owners_kv=FakeKV()),
        "retries": retries,
        "dead_letters": DeadLetterService(nc, replays, retries),
    }
    with serving(settings, state) as app, TestClient(app, base_url="http://mpr.local") as client:
        client.headers["Authorization"] = f"Bearer {TOKEN}"
        yield SimpleNamespace(client=client, nc=nc, js=nc.js, job_kv=job_kv, replays=replays)


def published(api, since: int = 0) -> list[tuple[str, Any, dict]]:
    types = {s.JOB_RETRIED: JobRetried}
    return [
        (subject, decode(payload, types.get(subject, JobRequested)), headers)
        for subject, payload, headers in api.js.published[since:]
    ]


# --- one job ------------------------------------------------------------------------------------
def test_a_failed_job_is_published_again_as_its_next_generation(api):
    original = record(api.nc, "j1")
    r = api.client.post("/api/jobs/j1/retry")
    assert r.status_code == 202, r.text
    job = r.json()["job"]
    assert (job["status"], job["retries"], job["error"], job["failure_reason"]) == ("queued", 1, None, None)
    (subject, req, headers), (retried_subject, retried, _) = published(api)
    assert subject == s.JOB_REQUESTED and headers["Nats-Msg-Id"] == "j1.retry1"
    assert req == msgspec.structs.replace(original, retry=1)  # the request as recorded, generation 1
    assert retried_subject == s.JOB_RETRIED and (retried.job_id, retried.retry) == ("j1", 1)
    # The job-state entry that kept it from running again now names the generation that runs.
    assert api.job_kv.values["j1"] == b"retried:1"


def test_a_retry_runs_in_the_queue_class_the_job_is_in_now(api):
    record(api.nc, "moved", priority="urgent", retries=2)
    assert api.client.post("/api/jobs/moved/retry").status_code == 202
    subject, req, headers = published(api)[0]
    assert (subject, req.priority, req.retry) == (s.requested_subject("urgent"), "urgent", 3)
    assert headers["Nats-Msg-Id"] == "moved.retry3"


def test_a_second_retry_of_the_same_generation_is_refused_and_publishes_nothing_new(api):
    record(api.nc, "twice")
    assert api.client.post("/api/jobs/twice/retry").status_code == 202
    n = len(api.js.published)
    again = api.client.post("/api/jobs/twice/retry")  # the catalog has not seen the first one yet
    assert again.status_code == 409 and "already requested" in again.json()["detail"]
    assert len(api.js.published) == n


@pytest.mark.parametrize("status", ["queued", "running", "completed"])
def test_only_a_failed_or_cancelled_job_is_retried(api, status):
    record(api.nc, "busy", status=status)
    r = api.client.post("/api/jobs/busy/retry")
    assert r.status_code == 409 and f"is {status}" in r.json()["detail"]
    assert api.js.published == [] and api.job_kv.values == {}


def test_a_cancelled_job_is_retried(api):
    record(api.nc, "c", status="cancelled")
    assert api.client.post("/api/jobs/c/retry").status_code == 202


def test_a_child_is_retried_with_its_package(api):
    record(api.nc, "p-720p", parent_id="p", rendition="720p")
    r = api.client.post("/api/jobs/p-720p/retry")
    assert r.status_code == 409 and "/api/jobs/p/retry" in r.json()["detail"]
    assert api.client.post("/api/jobs/nope/retry").status_code == 404
    assert api.client.post("/api/jobs/bad%20id/retry").status_code == 400


def test_an_unconfirmed_retry_is_a_503_and_calling_again_runs_the_same_generation(api):
    record(api.nc, "flaky")
    api.js.fail = True
    r = api.client.post("/api/jobs/flaky/retry")
    assert r.status_code == 503 and "retry the call" in r.json()["detail"]
    api.js.fail = False
    assert api.client.post("/api/jobs/flaky/retry").status_code == 202
    assert published(api)[0][2]["Nats-Msg-Id"] == "flaky.retry1"


# --- by filter ------------------------------------------------------------------------------------
def test_every_job_a_filter_matches_is_retried_and_the_filter_reaches_the_catalog(api):
    for job_id in ("a", "b", "c"):
        record(api.nc, job_id)
    record(api.nc, "done", status="completed")
    dry = api.client.post(
        "/api/retries", json={"reason": "source", "prefix": "in/", "since": 5, "dry_run": True}
    )
    assert dry.status_code == 200 and dry.json()["retried"] == ["a", "b", "c"] and dry.json()["dry_run"]
    assert api.js.published == []
    subject, q = api.nc.requests[-1]
    assert subject == s.CATALOG_JOB_REQUESTS
    assert (q.status, q.reason, q.prefix, q.since, q.limit, q.id) == (
        "failed",
        "source",
        "in/",
        5.0,
        100,
        None,
    )
    r = api.client.post("/api/retries", json={"limit": 2})
    assert r.status_code == 202
    assert r.json() == {"retried": ["a", "b"], "skipped": [], "matched": 2, "more": True, "dry_run": False}
    assert sorted(h["Nats-Msg-Id"] for subj, _, h in published(api) if subj == s.JOB_REQUESTED) == [
        "a.retry1",
        "b.retry1",
    ]


def test_jobs_already_being_retried_are_reported_as_skipped(api):
    record(api.nc, "a")
    record(api.nc, "b")
    assert api.client.post("/api/jobs/a/retry").status_code == 202
    r = api.client.post("/api/retries", json={})
    assert r.json()["retried"] == ["b"]
    assert r.json()["skipped"] == [{"id": "a", "detail": "retry 1 of job a was already requested"}]


@pytest.mark.parametrize(
    "body",
    [{"status": "completed"}, {"limit": 0}, {"limit": 1001}, {"reason": "nope"}, {"since": -1}, {"x": 1}],
)
def test_a_bad_filter_is_a_400(api, body):
    assert api.client.post("/api/retries", json=body).status_code == 400


# --- the log ------------------------------------------------------------------------------------
def test_the_log_lists_every_attempt_with_its_duration_and_the_final_error(api):
    record(api.nc, "j", retries=1)
    api.nc.attempts["j"] = [
        JobAttempt(
            job_id="j",
            attempt=1,
            retry=0,
            worker="t1",
            started_at=10.0,
            ended_at=12.25,
            outcome="failed",
            reason="source",
            error="source is not readable media",
            log="Invalid data found when processing input",
        ),
        JobAttempt(
            job_id="j", attempt=1, retry=1, worker="t2", started_at=20.0, ended_at=21.0, outcome="completed"
        ),
    ]
    r = api.client.get("/api/jobs/j/log")
    assert r.status_code == 200
    body = r.json()
    assert (body["job_id"], body["status"], body["retries"], body["failure_reason"]) == (
        "j",
        "failed",
        1,
        "source",
    )
    assert [(a["retry"], a["worker"], a["duration"], a["outcome"]) for a in body["attempts"]] == [
        (0, "t1", 2.25, "failed"),
        (1, "t2", 1.0, "completed"),
    ]
    assert body["attempts"][0]["log"] == "Invalid data found when processing input"
    assert api.client.get("/api/jobs/nope/log").status_code == 404


# --- dead letters ---------------------------------------------------------------------------------
def letter(subject: str, payload: bytes | str, job_id: str | None = None, at: float = 1.0) -> bytes:
    text = payload if isinstance(payload, str) else payload.decode()
    return encode(DeadLetter(subject=subject, error="undecodable", payload=text, job_id=job_id, at=at))


def test_dead_letters_are_listed_newest_first_by_subject_in_pages(api):
    api.js.dlq = {
        3: Stored(s.DLQ_JOBS, letter(s.JOB_REQUESTED, b"{not json")),
        4: Stored(s.DLQ_CATALOG, letter(s.OBJECT_FOUND, b"{}")),
        6: Stored(s.DLQ_JOBS, letter(s.JOB_CHILD, b"{}", job_id="p-720p")),
        7: Stored(s.DLQ_JOBS, b"not a dead letter"),
    }
    page = api.client.get("/api/dead-letters", params={"limit": 2}).json()
    assert [i["seq"] for i in page["items"]] == [7, 6] and page["next"] == 6
    assert page["items"][0]["error"].startswith("not a dead letter") and not page["items"][0]["replayable"]
    rest = api.client.get("/api/dead-letters", params={"after": page["next"]}).json()
    assert [i["seq"] for i in rest["items"]] == [4, 3] and rest["next"] is None
    jobs = api.client.get("/api/dead-letters", params={"subject": s.DLQ_JOBS}).json()["items"]
    assert [(i["seq"], i["subject"], i["replayable"]) for i in jobs] == [
        (7, s.DLQ_JOBS, False),
        (6, s.JOB_CHILD, False),
        (3, s.JOB_REQUESTED, True),
    ]
    assert api.client.get("/api/dead-letters", params={"subject": "mpr.jobs.>"}).status_code == 400


def test_a_dead_request_is_published_again_once(api):
    api.js.dlq = {9: Stored(s.DLQ_JOBS, letter(s.requested_subject("bulk"), b'{"kind": "audio"'))}
    r = api.client.post("/api/dead-letters/9/replay")
    assert r.status_code == 202 and (r.json()["seq"], r.json()["subject"]) == (9, "mpr.jobs.requested.bulk")
    [(subject, payload, headers)] = api.js.published
    assert (subject, payload, headers["Nats-Msg-Id"]) == (
        "mpr.jobs.requested.bulk",
        b'{"kind": "audio"',
        "replay-dlq-9",
    )
    again = api.client.post("/api/dead-letters/9/replay")
    assert again.status_code == 409 and "replayed already" in again.json()["detail"]
    assert len(api.js.published) == 1
    listed = api.client.get("/api/dead-letters").json()["items"][0]
    assert listed["replayed"]["subject"] == "mpr.jobs.requested.bulk"


def test_the_letters_a_catalog_and_a_transcoder_made_of_one_request_replay_it_once(api):
    def one_of(dlq_subject: str) -> Stored:
        dead = DeadLetter(subject=s.JOB_REQUESTED, stream_seq=41, error="undecodable", payload="{")
        return Stored(dlq_subject, encode(dead))

    api.js.dlq = {1: one_of(s.DLQ_CATALOG), 2: one_of(s.DLQ_JOBS)}
    assert api.client.post("/api/dead-letters/2/replay").status_code == 202
    [(_, _, headers)] = api.js.published
    assert headers["Nats-Msg-Id"] == "replay-jobs-41"
    other = api.client.post("/api/dead-letters/1/replay")
    assert other.status_code == 409 and "dead letter 2" in other.json()["detail"]
    listed = api.client.get("/api/dead-letters").json()["items"]
    assert [i["replayed"]["seq"] for i in listed] == [2, 2]


def test_a_dead_request_of_a_known_failed_job_is_replayed_as_its_retry(api):
    req = record(api.nc, "gave-up")
    api.js.dlq = {2: Stored(s.DLQ_JOBS, letter(s.JOB_REQUESTED, encode(req), job_id="gave-up"))}
    r = api.client.post("/api/dead-letters/2/replay")
    assert r.status_code == 202 and (r.json()["job_id"], r.json()["retry"]) == ("gave-up", 1)
    (subject, again, headers), (retried_subject, retried, _) = published(api)
    assert (subject, again.retry, headers["Nats-Msg-Id"]) == (s.JOB_REQUESTED, 1, "gave-up.retry1")
    assert retried.requested_by == "replay:api"


def test_a_replay_that_does_not_happen_may_be_tried_again(api):
    record(api.nc, "done", status="completed")
    api.js.dlq = {
        1: Stored(s.DLQ_JOBS, letter(s.JOB_REQUESTED, b"{}", job_id="done")),
        2: Stored(s.DLQ_JOBS, letter(s.JOB_REQUESTED, b"{}")),
    }
    r = api.client.post("/api/dead-letters/1/replay")
    assert r.status_code == 409 and "is completed" in r.json()["detail"]
    api.js.fail = True
    assert api.client.post("/api/dead-letters/2/replay").status_code == 503
    assert api.replays.values == {}  # neither is marked replayed
    api.js.fail = False
    assert api.client.post("/api/dead-letters/2/replay").status_code == 202


def test_a_dead_letter_queue_that_does_not_answer_is_a_503(api):
    api.js.dlq, api.js.dlq_down = {1: Stored(s.DLQ_JOBS, letter(s.JOB_REQUESTED, b"{}"))}, True
    for r in (api.client.get("/api/dead-letters"), api.client.post("/api/dead-letters/1/replay")):
        assert r.status_code == 503 and "did not answer" in r.json()["detail"]


def test_only_job_requests_are_replayed(api):
    api.js.dlq = {
        1: Stored(s.DLQ_JOBS, letter(s.JOB_CHILD, b"{}")),
        2: Stored(s.DLQ_CATALOG, letter(s.JOB_COMPLETED, b"{}")),
    }
    for seq in (1, 2):
        r = api.client.post(f"/api/dead-letters/{seq}/replay")
        assert r.status_code == 400 and "only job requests" in r.json()["detail"]
    assert api.client.post("/api/dead-letters/3/replay").status_code == 404
    assert api.js.published == [] and api.replays.values == {}


# --- GraphQL ----------------------------------------------------------------------------------------
def gql(api, query: str) -> dict:
    r = api.client.post("/graphql", json={"query": query})
    assert r.status_code == 200, r.text
    return r.json()


def test_graphql_retries_logs_and_dead_letters(api):
    record(api.nc, "g1")
    record(api.nc, "g2")
    api.js.dlq = {5: Stored(s.DLQ_JOBS, letter(s.JOB_REQUESTED, b"{}"))}
    one = gql(api, 'mutation { retryJob(id: "g1") { id status retries } }')
    assert one["data"]["retryJob"] == {"id": "g1", "status": "queued", "retries": 1}
    many = gql(api, "mutation { retryJobs(filter: {reason: source, limit: 10}) { retried skipped { id } } }")
    assert many["data"]["retryJobs"] == {"retried": ["g2"], "skipped": [{"id": "g1"}]}
    bad = gql(api, "mutation { retryJobs(filter: {limit: 5000}) { retried } }")
    assert bad["errors"][0]["extensions"]["code"] == "BAD_REQUEST"
    log = gql(api, '{ jobLog(id: "g1") { status failureReason attempts { worker } } }')
    assert log["data"]["jobLog"] == {"status": "failed", "failureReason": "source", "attempts": []}
    assert gql(api, '{ jobLog(id: "nope") { status } }')["data"]["jobLog"] is None
    letters = gql(api, "{ deadLetters(limit: 5) { seq replayable replayed { by } } }")
    assert letters["data"]["deadLetters"] == [{"seq": 5, "replayable": True, "replayed": None}]
    replay = gql(api, "mutation { replayDeadLetter(seq: 5) { seq by } }")
    assert replay["data"]["replayDeadLetter"] == {"seq": 5, "by": "graphql"}
    again = gql(api, "mutation { replayDeadLetter(seq: 5) { seq } }")
    assert again["errors"][0]["extensions"]["code"] == "CONFLICT"
