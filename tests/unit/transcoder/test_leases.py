"""Job leases in the job-state KV (mpr_common.jobstate.JobLease) and the transcoder's use of them: taken
with compare-and-set, renewed, taken over only after being left unrenewed for a whole lease on the
reader's own clock, and a job ended only from the lease of the run that holds it. In-process, on a fake
KV with JetStream KV's compare-and-set semantics and a fake clock."""

from __future__ import annotations

import asyncio
import logging
from types import SimpleNamespace
from typing import Any

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from nats.js.errors import KeyNotFoundError, KeyWrongLastSequenceError, ServiceUnavailableError

from mpr_common import subjects as s
from mpr_common.codec import decode, encode
from mpr_common.events import JobCompleted, JobFailed, JobRequested
from mpr_common.jobstate import LEASE_SAFETY, JobLease, JobState, QueuePlaces
from mpr_transcoder.pipeline import JobError, Outcome
from mpr_transcoder.settings import TranscoderSettings
from mpr_transcoder.worker import Worker
from mpr_transcoder.worker import attempt as worker_mod


class CasKV:
    """JetStream KV's calls with its semantics: one sequence for the bucket, ``create`` only where no
    entry is, ``update(last=)`` only from the entry's revision. ``lose_answers`` applies writes but
    raises as a timed-out request would; ``down`` fails every call."""

    def __init__(self) -> None:
        self.values: dict[str, tuple[bytes, int]] = {}
        self.seq = 0
        self.lose_answers = 0
        self.down = False
        self.unavailable = 0  # calls answered 503 (JetStream between leaders)

    def _store(self, key: str, value: bytes) -> int:
        self.seq += 1
        self.values[key] = (value, self.seq)
        if self.lose_answers:
            self.lose_answers -= 1
            raise TimeoutError("answer lost")
        return self.seq

    def _up(self) -> None:
        if self.down:
            raise TimeoutError("no leader")
        if self.unavailable:
            self.unavailable -= 1
            raise ServiceUnavailableError(code=503, err_code=10008)

    async def get(self, key: str) -> Any:
        self._up()
        if key not in self.values:
            raise KeyNotFoundError()
        value, revision = self.values[key]
        return SimpleNamespace(value=value, revision=revision)

    async def put(self, key: str, value: bytes) -> int:
        self._up()
        return self._store(key, value)

    async def create(self, key: str, value: bytes) -> int:
        self._up()
        if key in self.values:
            raise KeyWrongLastSequenceError()
        return self._store(key, value)

    async def update(self, key: str, value: bytes, last: int | None = None) -> int:
        self._up()
        if self.values.get(key, (b"", 0))[1] != last:
            raise KeyWrongLastSequenceError()
        return self._store(key, value)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def lease(
    state: JobState, clock: Clock, worker: str = "a", retry: int = 0, seconds: float = 10.0
) -> JobLease:
    return JobLease(state, "j", worker=worker, retry=retry, seconds=seconds, clock=clock)


def done(worker: str) -> JobCompleted:
    return JobCompleted(job_id="j", output_key="o.mp4", output_bucket="out", worker=worker, at=1.0)


# --- the lease itself -------------------------------------------------------------------------------
async def test_a_lease_is_taken_with_compare_and_set_and_keeps_others_out():
    kv, clock = CasKV(), Clock()
    state = JobState(kv)
    a, b = lease(state, clock, "a"), lease(state, clock, "b")
    assert await a.acquire() == "taken"
    assert await state.get("j") is None  # running is not ended
    assert await b.acquire() == "held" and b.holder is not None and b.holder.worker == "a"
    assert not a.expired() and a.deadline() == clock.now + 10 * (1 - LEASE_SAFETY)


async def test_renewals_keep_the_lease_whatever_the_time_and_restart_the_readers_count():
    kv, clock = CasKV(), Clock()
    state = JobState(kv)
    a, b = lease(state, clock, "a"), lease(state, clock, "b")
    assert await a.acquire() == "taken"
    assert await b.acquire() == "held"
    for _ in range(10):  # far longer than one lease, renewed every 4 s
        clock.now += 4
        assert await a.renew() == "renewed" and not a.expired()
        assert await b.acquire() == "held"  # a new revision: b counts from when it saw it
    assert await a.complete(done("a"))
    assert await b.acquire() == "ended" and await state.get("j") == done("a")


async def test_a_lease_left_unrenewed_is_taken_over_and_its_old_holder_can_neither_renew_nor_end_it():
    kv, clock = CasKV(), Clock()
    state = JobState(kv)
    a, b = lease(state, clock, "a"), lease(state, clock, "b")
    assert await a.acquire() == "taken"
    clock.now += 100  # a froze (or its bucket was unreachable) long before b came
    assert await b.acquire() == "held"  # b has not seen it unrenewed for a whole lease yet
    clock.now += 9.9
    assert await b.acquire() == "held"
    clock.now += 0.1
    assert a.expired()  # a stopped on its own clock before b could take over
    assert await b.acquire() == "taken"
    assert await a.renew() == "lost" and a.found.lease is not None and a.found.lease.worker == "b"
    assert not await a.complete(done("a"))
    assert not await a.fail()
    assert not await a.release()
    assert await b.complete(done("b"))
    assert await state.get("j") == done("b")


async def test_a_released_lease_is_taken_at_once_in_its_generation():
    kv, clock = CasKV(), Clock()
    state = JobState(kv)
    a, b = lease(state, clock, "a", retry=2), lease(state, clock, "b", retry=2)
    assert await a.acquire() == "taken"
    assert await a.release()
    assert await state.get("j", 1) == "superseded" and await state.get("j", 2) is None
    assert await b.acquire() == "taken"


async def test_generations_a_retry_takes_over_an_older_runs_lease_and_an_older_request_never_runs():
    kv, clock = CasKV(), Clock()
    state = JobState(kv)
    old = lease(state, clock, "a", retry=0)
    assert await old.acquire() == "taken"
    await state.retried("j", 1)  # what the API writes (over a run its catalog saw fail)
    assert await old.renew() == "lost"
    new = lease(state, clock, "b", retry=1)
    assert await new.acquire() == "taken"
    assert await state.get("j", 0) == "superseded"  # read while generation 1 runs
    assert await lease(state, clock, "c", retry=0).acquire() == "superseded"
    newer = lease(state, clock, "d", retry=2)  # a lease of an older generation holds nothing back
    assert await newer.acquire() == "taken"


async def test_answers_lost_in_an_election_are_read_back_never_applied_twice():
    kv, clock = CasKV(), Clock()
    state = JobState(kv)
    a = lease(state, clock, "a")
    kv.lose_answers = 1
    assert await a.acquire() == "taken"  # the create landed; its answer did not
    kv.lose_answers = 1
    assert await a.renew() == "unsure"
    clock.now += 3
    assert await a.renew() == "renewed"  # from a stale revision: it reads its own lease back
    kv.lose_answers = 1
    assert await a.complete(done("a"))
    assert await state.get("j") == done("a")


async def test_a_run_ends_its_job_through_an_election_of_the_bucket(monkeypatch):
    """The completion's answer lost as the bucket's leader died, then 503s while it has none: the run
    reads its own write back rather than leaving its lease to lapse (and the job to run again)."""
    monkeypatch.setattr(asyncio, "sleep", _no_sleep)
    kv, clock = CasKV(), Clock()
    state = JobState(kv)
    a = lease(state, clock, "a")
    assert await a.acquire() == "taken"
    kv.lose_answers, kv.unavailable = 1, 12
    assert await a.complete(done("a"))
    assert await state.get("j") == done("a")
    kv.unavailable = 5  # a delivery that comes meanwhile reads it too
    assert await lease(state, clock, "b").acquire() == "ended"


async def _no_sleep(_: float) -> None:
    return None


async def test_an_unreachable_bucket_makes_the_holder_give_up_before_anyone_may_take_over():
    kv, clock = CasKV(), Clock()
    state = JobState(kv)
    a = lease(state, clock, "a")
    assert await a.acquire() == "taken"
    kv.down = True
    clock.now += 5
    assert await a.renew() == "unsure" and not a.expired()
    clock.now += 2.5
    assert a.expired()  # 7.5 s: a quarter of the lease early


async def test_a_job_cancelled_while_it_runs_ends_the_lease():
    kv, clock = CasKV(), Clock()
    state = JobState(kv)
    a = lease(state, clock, "a")
    assert await a.acquire() == "taken"
    await state.cancelled("j")  # the API's cancel
    assert await a.renew() == "ended" and a.found.state == "cancelled"
    assert await a.cancel()  # what it finds is what it would write


@settings(max_examples=100, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.integers(0, 2),
            st.sampled_from(["acquire", "renew", "complete"]),
            st.sampled_from([0.0, 0.5, 2.5, 4.0, 5.0, 7.5]) | st.floats(0, 12),  # around the lease's marks
        ),
        max_size=30,
    )
)
@example([(0, "acquire", 0.0), (1, "acquire", 0.0), (1, "acquire", 5.0)])
def test_any_interleaving_has_one_live_holder_at_a_time_and_at_most_one_completion(steps):
    """Three runs of one job, any order of their calls and of the time between them: no two runs ever
    hold the lease live at once (by their own deadlines), and the job is completed at most once."""

    async def play() -> None:
        kv, clock = CasKV(), Clock()
        state = JobState(kv)
        runs = [lease(state, clock, f"w{i}") for i in range(3)]
        holding = [False] * 3
        completions = 0
        for who, op, wait in steps:
            clock.now += wait
            run = runs[who]
            if op == "acquire" and not holding[who]:
                holding[who] = await run.acquire() == "taken"
            elif op == "renew" and holding[who]:
                holding[who] = await run.renew() in ("renewed", "unsure")
            elif op == "complete" and holding[who] and not run.expired():
                if await run.complete(done(f"w{who}")):
                    completions += 1
                holding[who] = False
            live = [i for i in range(3) if holding[i] and not runs[i].expired()]
            assert len(live) <= 1, (live, steps)
        assert completions <= 1
        if completions:
            assert isinstance(await state.get("j"), JobCompleted)

    asyncio.run(play())


@settings(max_examples=100, deadline=None)
@given(
    seconds=st.floats(1, 120),
    seen_after=st.floats(0, 200),
    looks=st.lists(st.floats(0, 60), min_size=1, max_size=12),
)
def test_a_reader_takes_over_only_after_the_holder_has_given_up_on_its_own_clock(seconds, seen_after, looks):
    """However late a reader first sees an unrenewed lease and however often it looks again, it takes
    the job over only once the holder (which stopped renewing) is past its own deadline, and never
    later than a whole lease after its first look plus the gap to its next look."""

    async def play() -> None:
        kv, clock = CasKV(), Clock()
        state = JobState(kv)
        holder = lease(state, clock, "a", seconds=seconds)
        assert await holder.acquire() == "taken"
        clock.now += seen_after
        reader = lease(state, clock, "b")
        first = clock.now
        verdict = await reader.acquire()
        for wait in looks:
            if verdict == "taken":
                break
            clock.now += wait
            verdict = await reader.acquire()
        if verdict == "taken":
            assert holder.expired() and clock.now - first >= seconds
        else:
            assert clock.now - first < seconds

    asyncio.run(play())


# --- the transcoder's use of it ------------------------------------------------------------------------
class FakeJs:
    def __init__(self) -> None:
        self.published: list[tuple[str, bytes, dict]] = []

    async def publish(self, subject: str, payload: bytes, headers=None, timeout=None) -> Any:
        self.published.append((subject, payload, dict(headers or {})))
        return SimpleNamespace(seq=len(self.published), duplicate=False)

    def on(self, subject: str) -> list[bytes]:
        return [p for sub, p, _ in self.published if sub == subject]


class FakeNc:
    def __init__(self, js: FakeJs) -> None:
        self.js = js

    def jetstream(self) -> FakeJs:
        return self.js


class FakeMsg:
    def __init__(self, job: JobRequested, delivery: int = 1) -> None:
        self.data = encode(job)
        self.subject = s.JOB_REQUESTED
        self.headers = {"Nats-Msg-Id": job.job_id}
        self.metadata = SimpleNamespace(num_delivered=delivery, sequence=SimpleNamespace(stream=7))
        self.calls: list[str] = []

    async def ack_sync(self) -> None:
        self.calls.append("ack")

    async def nak(self, delay: float | None = None) -> None:
        self.calls.append("nak")

    async def in_progress(self) -> None:
        self.calls.append("in_progress")

    async def term(self) -> None:
        self.calls.append("term")


class Owners:
    async def claim(self, bucket: str, key: str, job_id: str) -> None:
        return None


class FakeRuns:
    """run_job in place of FFmpeg: each call waits until released (then returns an output) or until it
    is cancelled (then fails as FFmpeg stopped by a cancel does)."""

    def __init__(self) -> None:
        self.started: list[str] = []
        self.stopped: list[str] = []
        self.release = asyncio.Event()
        self.running = asyncio.Event()

    async def __call__(self, job: JobRequested, *, cancelled: asyncio.Event, **_: Any) -> Outcome:
        self.started.append(job.job_id)
        self.running.set()
        release = asyncio.ensure_future(self.release.wait())
        cancel = asyncio.ensure_future(cancelled.wait())
        await asyncio.wait([release, cancel], return_when=asyncio.FIRST_COMPLETED)
        release.cancel()
        cancel.cancel()
        if cancelled.is_set():
            self.stopped.append(job.job_id)
            raise JobError("cancelled by request", "cancelled")
        return Outcome(output_bucket="out", output_key="o.mp4", output_keys=["o.mp4"], output_size=1)


def make_worker(name: str, kv: CasKV, js: FakeJs, lease_seconds: float = 3.0) -> Worker:
    settings = TranscoderSettings(instance=name, lease_seconds=lease_seconds, progress_interval=0.05)
    w = Worker(settings, FakeNc(js), s3=None)  # type: ignore[arg-type]
    w.job_state = JobState(kv)
    w.places = QueuePlaces(kv)
    w.owners = Owners()  # type: ignore[assignment]
    w.packager = SimpleNamespace()  # type: ignore[assignment]  # no package children here
    w.ack_wait = 1.5  # renewals and in-progress acks every 0.5 s
    w.max_deliver = 5
    w.known_info = None  # type: ignore[assignment]
    return w


JOB = JobRequested(job_id="j", kind="thumbnail", source_key="in/a.mp4")


async def wait_until(check, timeout: float = 5.0) -> None:
    async with asyncio.timeout(timeout):
        while not check():  # noqa: ASYNC110 - a condition on captured logs, which set no event
            await asyncio.sleep(0.01)


@pytest.fixture
def runs(monkeypatch) -> FakeRuns:
    fake = FakeRuns()
    monkeypatch.setattr(worker_mod, "run_job", fake)
    return fake


async def test_a_delivery_of_a_job_another_worker_runs_is_not_started_and_ends_when_it_completes(
    runs, caplog
):
    kv, js = CasKV(), FakeJs()
    a, b = make_worker("a", kv, js), make_worker("b", kv, js)
    first, again = FakeMsg(JOB, 1), FakeMsg(JOB, 2)  # redelivered: the first's acks were lost
    with caplog.at_level(logging.INFO, logger="mpr.transcoder"):
        run_a = asyncio.create_task(a._handle(first, "normal"))
        await runs.running.wait()
        run_b = asyncio.create_task(b._handle(again, "normal"))
        await wait_until(lambda: "this delivery is not started" in caplog.text)
        # b keeps its delivery alive meanwhile (however slowly the machine runs): no NAK, no ack
        await wait_until(lambda: again.calls.count("in_progress") >= 2, timeout=30)
        assert "nak" not in again.calls and "ack" not in again.calls
        runs.release.set()
        await asyncio.gather(run_a, run_b)
    assert runs.started == ["j"]  # run once
    assert first.calls[-1] == "ack" and again.calls[-1] == "ack"
    completed = [decode(p, JobCompleted) for p in js.on(s.JOB_COMPLETED)]
    assert {c.worker for c in completed} == {"a"}  # b only reported a's outcome again (same msg id)
    assert len({h["Nats-Msg-Id"] for sub, _, h in js.published if sub == s.JOB_COMPLETED}) == 1
    assert await JobState(kv).get("j") == completed[0]


async def test_a_worker_whose_lease_is_taken_over_stops_ffmpeg_and_reports_nothing(runs, caplog):
    kv, js = CasKV(), FakeJs()
    a = make_worker("a", kv, js)
    msg = FakeMsg(JOB, 1)
    with caplog.at_level(logging.INFO, logger="mpr.transcoder"):
        task = asyncio.create_task(a._handle(msg, "normal"))
        await runs.running.wait()
        # Another run took the job over (a's renewals had not reached the bucket for a whole lease).
        thief = JobLease(JobState(kv), "j", worker="b", retry=0, seconds=3.0)
        entry = await JobState(kv).read("j")
        thief.revision = await kv.update("j", thief._value(), last=entry.revision)
        await asyncio.wait_for(task, 5)
    assert runs.stopped == ["j"]  # its FFmpeg was stopped
    assert "taken over by b" in caplog.text
    assert "ack" not in msg.calls and "nak" not in msg.calls  # the message is the new holder's
    assert not js.on(s.JOB_COMPLETED) and not js.on(s.JOB_FAILED) and not js.on(s.JOB_ATTEMPT)
    assert await thief.complete(done("b"))  # the thief ends it, from its own lease


async def test_a_run_that_finishes_after_losing_its_lease_does_not_complete(runs):
    kv, js = CasKV(), FakeJs()
    a = make_worker("a", kv, js, lease_seconds=60.0)  # no renewal comes before it finishes
    msg = FakeMsg(JOB, 1)
    task = asyncio.create_task(a._handle(msg, "normal"))
    await runs.running.wait()
    entry = await JobState(kv).read("j")
    thief = JobLease(JobState(kv), "j", worker="b", retry=0, seconds=60.0)
    await kv.update("j", thief._value(), last=entry.revision)
    runs.release.set()  # FFmpeg was done already: only the compare-and-set stands in the way
    await asyncio.wait_for(task, 5)
    assert not js.on(s.JOB_COMPLETED) and "ack" not in msg.calls
    assert (await JobState(kv).read("j")).lease.worker == "b"  # type: ignore[union-attr]


async def test_a_holder_that_dies_is_taken_over_once_its_lease_runs_out(runs, caplog):
    kv, js = CasKV(), FakeJs()
    a, b = make_worker("a", kv, js, lease_seconds=1.0), make_worker("b", kv, js, lease_seconds=1.0)
    first, again = FakeMsg(JOB, 1), FakeMsg(JOB, 2)
    task = asyncio.create_task(a._handle(first, "normal"))
    await runs.running.wait()
    a.stopping.set()  # a is frozen from now on: no renewal, no ack
    for t in list(a.tasks) + [task]:
        t.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    runs.running.clear()
    with caplog.at_level(logging.INFO, logger="mpr.transcoder"):
        run_b = asyncio.create_task(b._handle(again, "normal"))
        await runs.running.wait()  # b took it over after seeing it unrenewed for a lease
        assert "this delivery is not started" in caplog.text
        runs.release.set()
        await asyncio.wait_for(run_b, 5)
    completed = [decode(p, JobCompleted) for p in js.on(s.JOB_COMPLETED)]
    assert [(c.worker, c.attempt) for c in completed] == [("b", 2)] and again.calls[-1] == "ack"


async def test_a_failed_run_ends_the_job_from_its_lease(runs, monkeypatch):
    kv, js = CasKV(), FakeJs()
    a = make_worker("a", kv, js)

    async def bad_source(job, **_):
        raise JobError("source is not readable media", "source")

    monkeypatch.setattr(worker_mod, "run_job", bad_source)
    msg = FakeMsg(JOB, 1)
    await a._handle(msg, "normal")
    assert await JobState(kv).get("j") == "failed" and msg.calls[-1] == "ack"
    assert [decode(p, JobFailed).reason for p in js.on(s.JOB_FAILED)] == ["source"]


async def test_a_transient_failure_hands_the_lease_back_with_the_message(runs, monkeypatch):
    kv, js = CasKV(), FakeJs()
    a = make_worker("a", kv, js)

    async def flaky(job, **_):
        raise JobError("storage unreachable", "storage", retryable=True)

    monkeypatch.setattr(worker_mod, "run_job", flaky)
    msg = FakeMsg(JOB, 1)
    await a._handle(msg, "normal")
    assert msg.calls[-1] == "nak"
    assert await lease(JobState(kv), Clock(), "b").acquire() == "taken"  # at once, not after the lease


async def test_a_shutdown_hands_the_job_and_its_lease_back_at_once(runs):
    kv, js = CasKV(), FakeJs()
    a = make_worker("a", kv, js)
    msg = FakeMsg(JOB, 1)
    task = asyncio.create_task(a._handle(msg, "normal"))
    await runs.running.wait()
    a.stop()  # SIGTERM
    await asyncio.wait_for(task, 5)
    assert runs.stopped == ["j"] and msg.calls[-1] == "nak"
    assert await lease(JobState(kv), Clock(), "b").acquire() == "taken"  # no wait for the lease
    assert not js.on(s.JOB_COMPLETED) and not js.on(s.JOB_FAILED)
