"""The catalog's handlers in process over a real SQLite database: stream batches with JetStream
messages built here, queries through FastStream's TestNatsBroker."""

from __future__ import annotations

import itertools
from typing import Any

import msgspec
import pytest
from faststream.nats import NatsBroker, TestNatsBroker
from nats.aio.msg import Msg
from nats.js.api import PubAck

from mpr_catalog.batches import handle_job_events, handle_objects
from mpr_catalog.db import Database, make_engine
from mpr_catalog.deps import CatalogDeps
from mpr_catalog.ingest import Ingestor
from mpr_catalog.repository import Catalog
from mpr_catalog.router import register
from mpr_common import subjects as s
from mpr_common.catalog_requests import (
    REQUEST_TYPES,
    AnyCatalogRequest,
    CatalogReply,
    FindJobRequests,
    GetAsset,
    GetJob,
    GetJobLog,
    GetScan,
    ListAssets,
    ListJobs,
    subject_of,
)
from mpr_common.codec import decode, encode
from mpr_common.errors import ERROR_CODE_HEADER, NotFound, Unavailable, error_from_headers
from mpr_common.events import (
    DeadLetter,
    JobCompleted,
    JobFailed,
    JobPlayable,
    JobProgress,
    JobRequested,
    JobRetried,
    MediaInfo,
    ObjectFound,
    ScanStatus,
)
from mpr_common.jobstate import JobState
from mpr_common.presets import DEFAULT_PRESET
from tests.fakes import FakeKV


class NoWait:
    """In process there is no consumer to wait for: everything handled is committed."""

    async def wait(self, stream, durable, seq, timeout) -> bool:
        return True


class FakeNats:
    """Records acks/naks of delivered messages and what is published to JetStream."""

    def __init__(self) -> None:
        self.settled: list[tuple[str, bytes]] = []
        self.published: list[tuple[str, bytes]] = []
        self.seq = itertools.count(1)

    async def publish(self, subject, payload=b"", reply="", headers=None, timeout=None):
        if subject.startswith("$JS.ACK"):
            self.settled.append((subject, payload))
            return None
        self.published.append((subject, payload))
        return PubAck(stream="S", seq=len(self.published))

    def delivery(self, subject: str, data: bytes, headers: dict | None = None) -> Msg:
        n = next(self.seq)
        return Msg(self, subject=subject, reply=f"$JS.ACK.S.c.1.{n}.{n}.0.0", data=data, headers=headers)


@pytest.fixture
async def deps(migrated_db):
    engine = make_engine(migrated_db("sqlite"))
    db = Database(engine)
    nats = FakeNats()
    probes: list = []
    d = CatalogDeps(
        catalog=Catalog(db),
        ingestor=Ingestor(db),
        submit_probe=probes.append,
        barrier=NoWait(),
        js=nats,
        bucket_in="in",
    )
    d.probes, d.nats = probes, nats  # type: ignore[attr-defined]
    yield d
    await engine.dispose()


async def test_a_job_published_with_only_the_required_fields_is_one_job(deps):
    n = deps.nats
    # What an outside team sends per docs/asyncapi.json: kind and source_key, with its Nats-Msg-Id
    # (and once without: its id is then derived from the stream sequence, the same for every consumer).
    body = b'{"kind":"transcode","source_key":"in/a.mp4"}'
    batch = [
        n.delivery(s.JOB_REQUESTED, body, {"Nats-Msg-Id": "team-1"}),
        n.delivery(s.JOB_PROGRESS, encode(JobProgress(job_id="team-1", progress=50, worker="w"))),
        n.delivery(s.JOB_REQUESTED, body),
    ]
    await handle_job_events(deps, batch)
    jobs, total = await deps.catalog.list_jobs(10, 0)
    assert total == 2 and {j.id for j in jobs} == {"team-1", "js-3"}
    job = await deps.catalog.get_job("team-1")
    assert (job.kind, job.status, job.source_key) == ("transcode", "running", "in/a.mp4")
    assert job.preset == DEFAULT_PRESET["transcode"] and job.output_key  # what the transcoder will use
    assert [p for _, p in n.settled] == [b""] * 3  # acked after the commit


async def test_undecodable_events_are_dead_lettered_and_the_rest_recorded(deps):
    n = deps.nats
    await handle_job_events(
        deps,
        [
            n.delivery(s.JOB_PROGRESS, b'{"job_id": 5}'),
            n.delivery(s.JOB_REQUESTED, b'{"kind":"audio","source_key":"b.mp3","job_id":"ok"}'),
        ],
    )
    [(subject, payload)] = n.published
    letter = decode(payload, DeadLetter)
    assert subject == s.DLQ_CATALOG and letter.subject == s.JOB_PROGRESS and "undecodable" in letter.error
    assert [j.id for j in (await deps.catalog.list_jobs(10, 0))[0]] == ["ok"]
    assert len(n.settled) == 2 and all(p == b"" for _, p in n.settled)


async def test_a_batch_that_cannot_be_committed_is_naked_whole(deps):
    n = deps.nats
    await deps.catalog.db.engine.dispose()

    async def broken(run, attempts=3):
        raise RuntimeError("database unavailable")

    deps.ingestor.db.transaction = broken  # type: ignore[method-assign]
    await handle_job_events(deps, [n.delivery(s.JOB_CANCEL, b'{"job_id":"x"}') for _ in range(3)])
    assert len(n.settled) == 3 and all(p.startswith(b"-NAK") for _, p in n.settled)


async def test_found_objects_are_registered_probed_and_counted_by_scan(deps):
    n = deps.nats
    started = ScanStatus(scan_id="S", bucket="in", started_at=0)
    done = ScanStatus(scan_id="S", bucket="in", state="completed", found=2, started_at=0)
    batch = [
        n.delivery(s.SCAN_STATUS, encode(started)),
        *(
            n.delivery(s.OBJECT_FOUND, encode(ObjectFound(bucket="in", key=k, etag="e", scan_id="S")))
            for k in ("a.mp4", "b.mp4")
        ),
        n.delivery(s.SCAN_STATUS, encode(done)),
    ]
    await handle_objects(deps, batch)
    assert sorted(p.key for p in deps.probes) == ["a.mp4", "b.mp4"]
    scan = await deps.catalog.get_scan("S")
    assert (scan.state, scan.found, scan.registered, scan.skipped) == ("completed", 2, 2, 0)


async def test_forged_object_events_are_dead_lettered_not_registered(deps):
    """Only S3_BUCKET_IN's objects are registered, and only under safe keys."""
    n = deps.nats
    forged = [
        ObjectFound(bucket="private-bucket", key="secret.mp4", etag="e"),
        ObjectFound(bucket="in", key="../../etc/passwd.mp4", etag="e"),
    ]
    await handle_objects(deps, [n.delivery(s.OBJECT_FOUND, encode(ev)) for ev in forged])
    letters = [decode(p, DeadLetter) for subject, p in n.published if subject == s.DLQ_CATALOG]
    assert len(letters) == 2 and "not the one MPR scans" in letters[0].error and ".." in letters[1].error
    assert (await deps.catalog.list_assets(10, 0, include_removed=True))[1] == 0 and deps.probes == []


@pytest.fixture
async def queries(deps):
    broker = NatsBroker()
    register(broker, lambda: deps)
    async with TestNatsBroker(broker) as br:
        yield br


async def ask(br, q: AnyCatalogRequest) -> CatalogReply:
    """Ask the catalog as a client of mpr_common.catalog_requests does: on the request's subject."""
    # FastStream's default wait (0.5 s) is shorter than a query on a loaded machine may take
    msg = await br.request(encode(q), subject_of(q), timeout=30)
    error = error_from_headers(msg.headers)
    if error is not None:
        raise error
    return decode(msg.body, type(q).reply)


async def test_queries_answer_with_results_or_error_codes(deps, queries):
    n = deps.nats
    await handle_job_events(
        deps, [n.delivery(s.JOB_REQUESTED, b'{"kind":"audio","source_key":"b.mp3","job_id":"j1"}')]
    )
    reply = await ask(queries, GetJob(id="j1"))
    assert reply.job.status == "queued"
    assert (await ask(queries, ListJobs(limit=5))).total == 1
    assert (await ask(queries, ListJobs(status="failed"))).total == 0
    with pytest.raises(NotFound):
        await ask(queries, GetJob(id="nope"))
    with pytest.raises(NotFound):
        await ask(queries, GetScan(id="nope"))
    bad = await queries.request(b"{not json", s.CATALOG_JOBS_LIST, timeout=30)
    assert bad.headers[ERROR_CODE_HEADER] == "400"
    # a request sent on another request's subject is refused, not answered as that one
    misrouted = await queries.request(encode(GetJob(id="j1")), s.CATALOG_ASSET_GET, timeout=30)
    assert misrouted.headers[ERROR_CODE_HEADER] == "400"
    unknown_status = await queries.request(b'{"status":"lost"}', s.CATALOG_JOBS_LIST, timeout=30)
    assert unknown_status.headers[ERROR_CODE_HEADER] == "400"


class Behind:
    """A catalog that has not read its streams up to their end yet (the consumer's ack floor is lower)."""

    def __init__(self) -> None:
        self.waited: list[tuple[str, int | None, float]] = []

    async def wait(self, stream, durable, seq, timeout) -> bool:
        self.waited.append((stream, seq, timeout))
        return False


async def test_a_catalog_still_catching_up_says_retry_not_not_found(deps, queries):
    """A job the API acknowledged a moment ago and this catalog has not read yet is not "not found":
    the catalog waits up to its read wait, then answers 503 (retry). Caught up, a miss is a 404."""
    deps.barrier = behind = Behind()
    for q in (GetJob(id="j-new"), GetJobLog(id="j-new"), GetScan(id="s-new")):
        with pytest.raises(Unavailable, match="catching up"):
            await ask(queries, q)
    assert [(stream, seq) for stream, seq, _ in behind.waited] == [
        (s.JOBS_STREAM, None),
        (s.JOBS_STREAM, None),
        (s.OBJECTS_STREAM, None),
    ]
    assert {timeout for *_, timeout in behind.waited} == {deps.read_wait}
    assert deps.read_wait < 10.0  # under the API's request timeout, so the answer reaches it
    n = deps.nats
    await handle_job_events(
        deps, [n.delivery(s.JOB_REQUESTED, b'{"kind":"audio","source_key":"b.mp3","job_id":"j-new"}')]
    )
    assert (await ask(queries, GetJob(id="j-new"))).job.id == "j-new"  # found: no wait
    deps.barrier = NoWait()
    with pytest.raises(NotFound):
        await ask(queries, GetJobLog(id="nope"))


async def test_a_request_without_its_tag_is_answered_on_its_subject(deps, queries):
    """Callers that leave the tag out are answered as before: the subject says which request it is."""
    n = deps.nats
    await handle_job_events(
        deps, [n.delivery(s.JOB_REQUESTED, b'{"kind":"audio","source_key":"b.mp3","job_id":"j1"}')]
    )
    assert set(REQUEST_TYPES) == {
        s.CATALOG_ASSETS_LIST,
        s.CATALOG_ASSET_GET,
        s.CATALOG_JOBS_LIST,
        s.CATALOG_JOB_GET,
        s.CATALOG_JOB_LOG,
        s.CATALOG_JOB_REQUESTS,
        s.CATALOG_SCAN_GET,
    }

    async def untagged(q: AnyCatalogRequest) -> Any:
        fields = {k: v for k, v in msgspec.to_builtins(q).items() if k != "request"}
        msg = await queries.request(encode(fields), subject_of(q), timeout=30)
        error = error_from_headers(msg.headers)
        if error is not None:
            raise error
        return decode(msg.body, type(q).reply)

    got = await untagged(GetJob(id="j1", after_seq=1))
    assert got.job.id == "j1"
    listed = await untagged(ListJobs(limit=5, status="queued"))
    assert (listed.total, [j.id for j in listed.jobs]) == (1, ["j1"])
    logged = await untagged(GetJobLog(id="j1"))
    assert logged.job.id == "j1" and logged.attempts == []
    retry = await untagged(FindJobRequests(id="j1", limit=1))
    assert [r.job_id for r in retry.requests] == ["j1"] and retry.total == 1
    assert (await untagged(ListAssets(limit=5))).total == 0
    with pytest.raises(NotFound):
        await untagged(GetAsset(id="a"))
    with pytest.raises(NotFound):
        await untagged(GetScan(id="s"))


async def test_every_request_round_trips_through_the_tagged_union():
    for subject, request_type in REQUEST_TYPES.items():
        fields = {"id": "x"} if "id" in request_type.__struct_fields__ else {}
        req = request_type(**fields)
        assert subject_of(req) == subject
        assert decode(encode(req), AnyCatalogRequest) == req
    assert decode(b'{"request":"mpr.catalog.assets.list","limit":3}', AnyCatalogRequest) == ListAssets(
        limit=3
    )
    assert isinstance(decode(b'{"request":"mpr.catalog.assets.get","id":"a"}', AnyCatalogRequest), GetAsset)


async def test_a_package_shows_its_children_and_their_weighted_progress(deps):
    from mpr_common.events import JobCompleted, JobRequested, Loudness, MediaInfo
    from mpr_common.jobs import normalize_job
    from mpr_transcoder.kinds.package.children import plan_package

    n = deps.nats
    # unchunked: one child per rung (the chunked case is the next test)
    parent = normalize_job(
        JobRequested(job_id="p1", kind="package", source_key="in/show.mp4", chunk_seconds=0)
    )
    info = MediaInfo(duration=60.0, video_codec="h264", width=1280, height=720, audio_codec="aac")
    plan = plan_package(parent, info)  # 720p (weight 4), 480p (1.8), 360p (1), audio (0.3)
    batch = [n.delivery(s.JOB_REQUESTED, encode(parent), {"Nats-Msg-Id": "p1"})]
    batch += [n.delivery(s.JOB_CHILD, encode(c), {"Nats-Msg-Id": plan.msg_id(c)}) for c in plan.children]
    batch.append(n.delivery(s.JOB_PROGRESS, encode(JobProgress(job_id="p1", progress=0, worker="w"))))
    progress = {"p1-720p": 50.0, "p1-480p": 100.0, "p1-360p": 0.0, "p1-audio": 100.0}
    batch += [
        n.delivery(s.JOB_PROGRESS, encode(JobProgress(job_id=k, progress=v))) for k, v in progress.items()
    ]
    await handle_job_events(deps, batch)
    job = await deps.catalog.get_job("p1")
    assert job.status == "running" and sorted(job.children) == sorted(c.job_id for c in plan.children)
    expected = (4.0 * 50 + 1.8 * 100 + 1.0 * 0 + 0.3 * 100) / (4.0 + 1.8 + 1.0 + 0.3)
    assert job.progress == pytest.approx(expected, abs=0.05)
    listed, _ = await deps.catalog.list_jobs(10, 0, "running")
    assert next(j for j in listed if j.id == "p1") == job  # lists carry the same view
    child = await deps.catalog.get_job("p1-720p")
    assert (child.parent_id, child.rendition, child.kind) == ("p1", "720p", "rendition")

    loud = Loudness(input_i=-31.2, input_tp=-12.0, input_lra=3.1, input_thresh=-41.5, target_offset=0.2)
    done = JobCompleted(job_id="p1", output_key="in/show/p1/master.m3u8", output_bucket="out", loudness=loud)
    await handle_job_events(deps, [n.delivery(s.JOB_COMPLETED, encode(done))])
    job = await deps.catalog.get_job("p1")
    assert (job.status, job.progress, job.loudness) == ("completed", 100.0, loud)


async def test_a_chunked_packages_progress_is_its_chunks_weighted_by_their_length(deps):
    from mpr_common.jobs import normalize_job
    from mpr_transcoder.kinds.package.children import plan_package

    n = deps.nats
    parent = normalize_job(
        JobRequested(job_id="pc", kind="package", source_key="in/show.mp4", chunk_seconds=12)
    )
    info = MediaInfo(duration=60.0, video_codec="h264", width=1280, height=720, audio_codec="aac")
    plan = plan_package(parent, info)
    chunks = plan.chunks_of("720p")
    assert len(chunks) > 1 and all(c.chunk is not None for c in chunks)
    batch = [n.delivery(s.JOB_REQUESTED, encode(parent), {"Nats-Msg-Id": "pc"})]
    batch += [n.delivery(s.JOB_CHILD, encode(c), {"Nats-Msg-Id": plan.msg_id(c)}) for c in plan.jobs]
    # every 720p chunk done, nothing else: the 720p rung's whole weight (4 of 7.1)
    batch += [
        n.delivery(s.JOB_PROGRESS, encode(JobProgress(job_id=c.job_id, progress=100.0))) for c in chunks
    ]
    await handle_job_events(deps, batch)
    job = await deps.catalog.get_job("pc")
    assert sorted(job.children) == sorted(c.job_id for c in plan.jobs)
    assert job.progress == pytest.approx(100 * 4.0 / (4.0 + 1.8 + 1.0 + 0.3), abs=0.1)


async def test_a_packages_children_not_released_yet_count_as_not_started(deps):
    from mpr_common.jobs import normalize_job
    from mpr_transcoder.kinds.package.children import plan_package
    from mpr_transcoder.kinds.package.releasing import with_shares

    n = deps.nats
    parent = normalize_job(
        JobRequested(job_id="pw", kind="package", source_key="in/show.mp4", chunk_seconds=12)
    )
    info = MediaInfo(duration=60.0, video_codec="h264", width=1280, height=720, audio_codec="aac")
    plan = with_shares(plan_package(parent, info))  # as the transcoder stores it: shares of 1
    window = plan.jobs[:4]  # the sound and every rung's first chunk: all the queue has seen yet
    batch = [n.delivery(s.JOB_REQUESTED, encode(parent), {"Nats-Msg-Id": "pw"})]
    batch += [n.delivery(s.JOB_CHILD, encode(c), {"Nats-Msg-Id": plan.msg_id(c)}) for c in window]
    batch += [
        n.delivery(s.JOB_PROGRESS, encode(JobProgress(job_id=c.job_id, progress=100.0))) for c in window
    ]
    await handle_job_events(deps, batch)
    job = await deps.catalog.get_job("pw")
    assert sorted(job.children) == sorted(c.job_id for c in window)
    # their shares of the whole package, not 100 %: the children still held back have not started
    assert job.progress == pytest.approx(100 * sum(c.weight for c in window), abs=0.1) and job.progress < 40


async def test_a_package_is_playable_once_from_its_playable_event_of_its_generation(deps, queries):
    from mpr_common.jobs import outcome_id

    n = deps.nats
    deps.job_state = JobState(FakeKV())
    req = JobRequested(job_id="p2", kind="package", source_key="in/show.mp4")
    playable = JobPlayable(job_id="p2", output_key="in/show/p2/master.m3u8", output_bucket="out", at=50.0)
    msg_id = {"Nats-Msg-Id": outcome_id("playable", "p2", 0)}
    await handle_job_events(
        deps,
        [
            n.delivery(s.JOB_REQUESTED, encode(req), {"Nats-Msg-Id": "p2"}),
            n.delivery(s.JOB_PROGRESS, encode(JobProgress(job_id="p2", progress=3, worker="w"))),
            n.delivery(s.JOB_PLAYABLE, encode(playable), msg_id),
        ],
    )
    job = (await ask(queries, GetJob(id="p2"))).job
    assert (job.status, job.playable_at, job.playable_key) == ("running", 50.0, "in/show/p2/master.m3u8")
    assert job.playable_url is None  # the API's to make

    # Delivered again (a redelivery, a later publish of the same fact), or from a generation nobody
    # started: nothing changes.
    again = [
        n.delivery(s.JOB_PLAYABLE, encode(playable), msg_id),
        n.delivery(s.JOB_PLAYABLE, encode(msgspec.structs.replace(playable, at=60.0, retry=4))),
    ]
    await handle_job_events(deps, again)
    assert await deps.catalog.get_job("p2") == job

    # Its completion keeps the moment it became playable.
    done = JobCompleted(job_id="p2", output_key="in/show/p2/master.m3u8", output_bucket="out", at=90.0)
    await handle_job_events(deps, [n.delivery(s.JOB_COMPLETED, encode(done))])
    job = await deps.catalog.get_job("p2")
    assert (job.status, job.playable_at) == ("completed", 50.0)
    assert all(p == b"" for _, p in n.settled) and not n.published  # all acked, nothing dead-lettered


async def test_a_child_look_alike_on_the_requests_subject_is_dead_lettered(deps):
    from mpr_common.events import JobRequested

    n = deps.nats
    forged = JobRequested(
        job_id="p1-720p", kind="rendition", source_key="in/a.mp4", parent_id="p1", rendition="720p"
    )
    await handle_job_events(deps, [n.delivery(s.JOB_REQUESTED, encode(forged), {"Nats-Msg-Id": "x"})])
    assert await deps.catalog.get_job("p1-720p") is None
    ((subject, payload),) = n.published
    assert subject == s.DLQ_CATALOG and "parent_id" in decode(payload, DeadLetter).error


async def test_assets_are_found_by_a_part_of_their_name_in_any_case(deps):
    n = deps.nats
    keys = ["shows/Interview-Final.mp4", "shows/b-roll.mp4", "archive/interview_raw.mov", "odd/100%_cut.mp4"]
    await handle_objects(
        deps, [n.delivery(s.OBJECT_FOUND, encode(ObjectFound(bucket="in", key=k, etag="e"))) for k in keys]
    )
    found, total = await deps.catalog.list_assets(10, 0, name="INTERVIEW")
    assert total == 2 and sorted(a.key for a in found) == [
        "archive/interview_raw.mov",
        "shows/Interview-Final.mp4",
    ]
    found, total = await deps.catalog.list_assets(10, 0, prefix="shows/", name="interview")
    assert [a.key for a in found] == ["shows/Interview-Final.mp4"]
    found, _ = await deps.catalog.list_assets(10, 0, name="%_")  # LIKE's wildcards are plain characters
    assert [a.key for a in found] == ["odd/100%_cut.mp4"]


# --- only the API's retry path raises a generation ---------------------------------------------------
def _request(n, job_id: str, retry: int = 0, msg_id: str | None = None) -> Msg:
    req = JobRequested(job_id=job_id, kind="audio", source_key="a.mp4", retry=retry)
    return n.delivery(s.JOB_REQUESTED, encode(req), {"Nats-Msg-Id": msg_id or f"{job_id}.r{retry}"})


async def test_a_request_with_a_made_up_generation_does_not_rewrite_a_finished_job(deps):
    n = deps.nats
    deps.job_state = state = JobState(FakeKV())
    done = JobCompleted(job_id="j", output_key="a/j/out.m4a", output_bucket="out", worker="w", retry=0)
    await handle_job_events(deps, [_request(n, "j"), n.delivery(s.JOB_COMPLETED, encode(done))])
    await state.completed(done)

    # Published straight onto NATS: a request of generation 7 that no retry started, and what a
    # transcoder answers such a request of an ended job with (its outcome again, under that generation).
    forged = [
        _request(n, "j", retry=7, msg_id="forged"),
        n.delivery(s.JOB_COMPLETED, encode(msgspec.structs.replace(done, retry=7))),
        n.delivery(s.JOB_FAILED, encode(JobFailed(job_id="j", error="x", reason="cancelled", retry=7))),
        n.delivery(s.JOB_PROGRESS, encode(JobProgress(job_id="j", progress=1, retry=3))),
    ]
    await handle_job_events(deps, forged)
    job = await deps.catalog.get_job("j")
    assert (job.status, job.retries, job.output_key) == ("completed", 0, "a/j/out.m4a")
    assert all(p == b"" for _, p in n.settled)  # acked: nothing to redeliver

    # The API's retry path marks the generation in the KV first: then its request starts it.
    await state.retried("j", 1)
    await handle_job_events(deps, [_request(n, "j", retry=1)])
    job = await deps.catalog.get_job("j")
    assert (job.status, job.retries) == ("queued", 1)
    rerun = msgspec.structs.replace(done, retry=1, output_size=5)
    await handle_job_events(deps, [n.delivery(s.JOB_COMPLETED, encode(rerun))])
    await state.completed(rerun)
    assert ((await deps.catalog.get_job("j")).status, (await deps.catalog.get_job("j")).retries) == (
        "completed",
        1,
    )

    # A JobRetried (which only the API publishes) starts its generation too, whatever the KV reads.
    await handle_job_events(
        deps,
        [n.delivery(s.JOB_RETRIED, encode(JobRetried(job_id="j", retry=2))), _request(n, "j", retry=2)],
    )
    job = await deps.catalog.get_job("j")
    assert (job.status, job.retries) == ("queued", 2)


async def test_a_new_job_with_a_made_up_generation_is_not_recorded_as_retried(deps):
    n = deps.nats
    deps.job_state = JobState(FakeKV())
    await handle_job_events(deps, [_request(n, "fresh", retry=4)])
    assert await deps.catalog.get_job("fresh") is None
    await handle_job_events(deps, [_request(n, "fresh")])
    job = await deps.catalog.get_job("fresh")
    assert (job.status, job.retries) == ("queued", 0)


async def test_a_child_whose_worker_died_on_every_delivery_fails_with_its_package(deps):
    """The max-deliveries advisory: the child fails (dead letter kept), and its package with it."""
    from types import SimpleNamespace

    from mpr_catalog.advisories import MaxDeliveriesAdvisory, fail_abandoned_job

    child = JobRequested(
        job_id="p1-720p", kind="rendition", source_key="a.mp4", parent_id="p1", rendition="720p", retry=2
    )
    stored = {7: SimpleNamespace(data=encode(child), headers={}, subject=s.JOB_CHILD)}

    async def get_msg(stream, seq):
        return stored[seq]

    deps.nats.get_msg = get_msg
    deps.job_state = JobState(FakeKV())
    advisory = MaxDeliveriesAdvisory(stream=s.JOBS_STREAM, consumer="transcoders", stream_seq=7, deliveries=5)
    await fail_abandoned_job(deps, encode(advisory))

    published = [(subject, p) for subject, p in deps.nats.published]
    [letter] = [decode(p, DeadLetter) for subject, p in published if subject == s.DLQ_JOBS]
    assert (
        letter.job_id == "p1-720p"
        and letter.deliveries == 5
        and decode(letter.payload, JobRequested) == child
    )
    failed = {
        f.job_id: f for f in (decode(p, JobFailed) for subject, p in published if subject == s.JOB_FAILED)
    }
    assert set(failed) == {"p1-720p", "p1"}
    assert (
        failed["p1"].retry == 2
        and failed["p1"].reason == "internal"
        and "720p (p1-720p)" in failed["p1"].error
    )
    assert await deps.job_state.get("p1") == "failed" and await deps.job_state.get("p1-720p") == "failed"
