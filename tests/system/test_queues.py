"""Queue control below the API, on a real nats-server: which copy of a moved job may start (exactly one,
whatever the order of deliveries, moves and crashes), the pause flags the transcoders follow, and the
pulls they make (at once, or waiting) from each class's consumer."""

from __future__ import annotations

import asyncio
import itertools
import random
import time
from types import SimpleNamespace

import nats
import pytest
from nats.js.api import AckPolicy, ConsumerConfig, KeyValueConfig, StreamConfig

from mpr_common import subjects as s
from mpr_common.events import PRIORITIES
from mpr_common.jobstate import (
    MoveRefused,
    QueuePlace,
    QueuePlaces,
    claim_verdict,
    move_number,
    move_target,
)
from mpr_devstack.servers import NatsServer, free_port
from mpr_transcoder.worker.pause_flags import PauseFlags, is_paused
from mpr_transcoder.worker.pull import pull_one

pytestmark = pytest.mark.system


@pytest.fixture
async def nc(tmp_path):
    srv = NatsServer(tmp_path / "js", port=free_port(), log_path=tmp_path / "nats.log").start()
    conn = await nats.connect(srv.url)
    yield conn
    await conn.close()
    srv.stop()


@pytest.fixture
async def places(nc):
    kv = await nc.jetstream().create_key_value(KeyValueConfig(bucket=s.JOB_STATE_KV, history=1))
    return QueuePlaces(kv)


def copy(priority: str, move: int = 0, retry: int = 0) -> QueuePlace:
    return QueuePlace(priority=priority, move=move, retry=retry)


# --- which copy may start: the rules ---------------------------------------------------------------
def test_the_newest_copy_wins_until_one_has_started():
    original, moved = copy("bulk"), copy("urgent", 1)
    assert claim_verdict(None, original) == "claim"  # never moved: the first delivery claims it
    assert claim_verdict(moved, original) == "skip"  # moved away: the copy left behind is skipped
    assert claim_verdict(moved, moved) == "claim"
    started = QueuePlace(priority="urgent", move=1, started=True)
    assert claim_verdict(started, moved) == "run"  # a redelivery of the copy that runs
    assert claim_verdict(started, original) == "skip"
    # The move's copy came before its record (or the record was lost): it still wins over the original.
    assert claim_verdict(QueuePlace(priority="bulk"), moved) == "claim"
    # … but not over an original that started first.
    assert claim_verdict(QueuePlace(priority="bulk", started=True), moved) == "skip"
    # A retry is a new generation: it replaces whatever ran before, and older requests are skipped.
    assert claim_verdict(started, copy("normal", retry=1)) == "claim"
    assert claim_verdict(QueuePlace(priority="normal", retry=1), original) == "skip"


def test_a_move_is_refused_once_the_job_started_or_moved_elsewhere():
    found = copy("bulk")
    assert move_target(None, found, "urgent") == copy("urgent", 1)
    assert move_target(copy("urgent", 1), found, "urgent") is None  # that very move, done already
    with pytest.raises(MoveRefused, match="started"):
        move_target(QueuePlace(priority="bulk", started=True), found, "urgent")
    with pytest.raises(MoveRefused, match="meanwhile"):
        move_target(copy("normal", 1), found, "urgent")  # another move took it elsewhere first
    assert move_target(copy("urgent", 1), copy("urgent", 1), "bulk") == copy("bulk", 2)


@pytest.mark.parametrize(
    ("headers", "number"), [(None, 0), ({}, 0), ({"Mpr-Queue-Move": "3"}, 3), ({"Mpr-Queue-Move": "x"}, 0)]
)
def test_a_copy_names_its_move_in_a_header(headers, number):
    assert move_number(headers) == number


# --- which copy may start: on the KV ----------------------------------------------------------------
async def test_after_a_move_only_the_moved_copy_starts(places):
    await places.move("j1", copy("bulk"), "urgent", seq=42)
    assert await places.get("j1") == QueuePlace(priority="urgent", move=1, seq=42)
    results = await asyncio.gather(places.claim("j1", copy("bulk")), places.claim("j1", copy("urgent", 1)))
    assert results == [False, True]
    assert await places.claim("j1", copy("urgent", 1))  # its redelivery runs on
    assert not await places.claim("j1", copy("bulk"))
    with pytest.raises(MoveRefused, match="started"):
        await places.move("j1", copy("urgent", 1), "normal", seq=50)


async def test_a_job_that_started_before_its_move_stays_where_it_is(places):
    assert await places.claim("j2", copy("bulk"))
    with pytest.raises(MoveRefused, match="started"):
        await places.move("j2", copy("bulk"), "urgent", seq=7)
    assert not await places.claim("j2", copy("urgent", 1))  # the copy the refused move published


async def test_a_repeated_move_is_recorded_once(places):
    first = await places.move("j3", copy("bulk"), "urgent", seq=9)
    assert await places.move("j3", copy("bulk"), "urgent", seq=9) == first


@pytest.mark.parametrize("seed", range(8))
async def test_exactly_one_copy_starts_whatever_the_interleaving(places, seed):
    """Moves and deliveries of every copy race (concurrent compare-and-sets on the real KV): one copy
    starts, and every redelivery of it runs while every other copy is skipped."""
    rnd = random.Random(seed)
    job = f"race-{seed}"
    copies = [copy("bulk"), copy("urgent", 1), copy("normal", 2)]

    async def mover(found: QueuePlace, to: str) -> None:
        await asyncio.sleep(rnd.random() * 0.01)
        try:
            await places.move(job, found, to, seq=None)
        except MoveRefused:
            pass

    async def deliver(c: QueuePlace) -> bool:
        await asyncio.sleep(rnd.random() * 0.01)
        return await places.claim(job, c)

    deliveries = [c for c in copies for _ in range(3)]
    rnd.shuffle(deliveries)
    moves = [mover(copies[0], "urgent"), mover(copies[1], "normal")]
    results = await asyncio.gather(*(deliver(c) for c in deliveries), *moves)
    started = {(c.priority, c.move) for c, ok in zip(deliveries, results, strict=False) if ok}
    assert len(started) == 1, started
    live = await places.get(job)
    assert live is not None and live.started and {(live.priority, live.move)} == started


# --- pause flags -------------------------------------------------------------------------------------
async def until(done, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not done():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.02)


def test_only_the_paused_value_pauses():
    assert is_paused(s.QUEUE_PAUSED)
    assert not any(is_paused(v) for v in (None, b"", b"running", b"PAUSED"))


async def test_transcoders_follow_pause_and_resume_as_they_are_written(nc):
    kv = await nc.jetstream().create_key_value(KeyValueConfig(bucket=s.QUEUES_KV, history=1))
    await kv.put("bulk", s.QUEUE_PAUSED)  # paused before the transcoder starts
    flags = PauseFlags(kv, PRIORITIES)
    stopping = asyncio.Event()
    follow = asyncio.create_task(flags.follow(nc, stopping))
    await asyncio.wait_for(flags.loaded.wait(), 5)
    assert flags.paused == {"bulk"}
    flags.changed.clear()
    began = time.monotonic()
    await kv.put("urgent", s.QUEUE_PAUSED)
    await asyncio.wait_for(flags.changed.wait(), 2)
    assert flags.paused == {"bulk", "urgent"} and time.monotonic() - began < 0.5  # pushed, not polled
    await kv.put("bulk", b"running")
    await kv.delete("urgent")
    await until(lambda: not flags.paused)
    await kv.put("unknown-class", s.QUEUE_PAUSED)  # not a class this replica serves
    await kv.put("normal", s.QUEUE_PAUSED)
    await until(lambda: flags.paused == {"normal"})
    stopping.set()
    await asyncio.wait_for(follow, 2)


async def test_a_read_older_than_an_update_does_not_undo_it():
    """A reload reads an entry while an update of it arrives: the update wins."""

    class SlowKV:
        async def get(self, key):
            if key == "bulk":  # the update arrives while the (now stale) value is on its way
                await flags._on_update(
                    SimpleNamespace(subject=f"$KV.{s.QUEUES_KV}.bulk", headers=None, data=s.QUEUE_PAUSED)
                )
            return SimpleNamespace(value=b"running")

    flags = PauseFlags(SlowKV(), PRIORITIES)
    await flags.reload()
    assert flags.paused == {"bulk"}


# --- pulls ---------------------------------------------------------------------------------------------
@pytest.fixture
async def queue(nc):
    js = nc.jetstream()
    await js.add_stream(StreamConfig(name="Q", subjects=["q.*"]))
    for name in ("a", "b"):
        await js.add_consumer(
            "Q", ConsumerConfig(durable_name=name, filter_subject=f"q.{name}", ack_policy=AckPolicy.EXPLICIT)
        )
    return js


async def counted(js, durable: str, pending: int) -> None:
    """Until ``durable`` counts ``pending`` messages. The publish's ack says the stream stored the
    message, not that the consumer has counted it yet: on a loaded machine an at-once pull sent right
    after the ack was answered "no messages" (seen once in a full ``make test``). A transcoder loses
    nothing to that: after its at-once pulls it waits on every class, and the message reaches that wait.
    The tests of at-once pulls start from what the consumer has counted (the count an at-once pull is
    answered from), never from a sleep."""
    for _ in range(500):
        if (await js.consumer_info("Q", durable)).num_pending >= pending:
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"consumer {durable} never counted {pending} messages")


async def test_a_pull_at_once_answers_at_once(nc, queue):
    began = time.monotonic()
    assert await pull_one(nc, "Q", "a") is None
    assert time.monotonic() - began < 0.3
    await queue.publish("q.a", b"job")
    await counted(queue, "a", 1)
    msg = await pull_one(nc, "Q", "a")
    assert msg is not None and msg.data == b"job" and msg.subject == "q.a"
    await msg.ack_sync()
    assert await pull_one(nc, "Q", "a") is None
    assert (await queue.consumer_info("Q", "a")).num_ack_pending == 0


async def test_a_waiting_pull_takes_what_comes_or_gives_up_after_its_wait(nc, queue):
    began = time.monotonic()
    assert await pull_one(nc, "Q", "b", wait=0.4) is None
    assert 0.3 < time.monotonic() - began < 1.5

    async def later():
        await asyncio.sleep(0.2)
        await queue.publish("q.b", b"late")

    publisher = asyncio.create_task(later())
    msg = await pull_one(nc, "Q", "b", wait=3)
    await publisher
    assert msg is not None and msg.data == b"late"
    await msg.ack_sync()
    # Nothing was left delivered to a pull nobody waits for: the other class and this one are clean.
    for name in ("a", "b"):
        info = await queue.consumer_info("Q", name)
        assert info.num_ack_pending == 0 and info.num_pending == 0


async def test_pulls_of_every_class_one_slot_each_take_every_job_once(nc, queue):
    for i in range(6):
        await queue.publish(f"q.{'ab'[i % 2]}", str(i).encode())
    for name in "ab":
        await counted(queue, name, 3)
    taken = []
    for name in itertools.islice(itertools.cycle("ab"), 10):
        msg = await pull_one(nc, "Q", name)
        if msg is not None:
            taken.append(msg.data)
            await msg.ack_sync()
    assert sorted(taken) == [str(i).encode() for i in range(6)]


async def test_an_abandoned_wait_takes_no_job(nc, queue):
    """Given up (a class paused, a job on another class): the server drops the wait with its inbox,
    so a job published afterwards is not sent to it but waits for the next pull."""
    abort = asyncio.Event()
    waiting = asyncio.create_task(pull_one(nc, "Q", "a", wait=5, abort=abort))
    await asyncio.sleep(0.2)
    began = time.monotonic()
    abort.set()
    assert await waiting is None and time.monotonic() - began < 0.5
    await queue.publish("q.a", b"after")
    await asyncio.sleep(0.2)
    info = await queue.consumer_info("Q", "a")
    assert info.num_ack_pending == 0 and info.num_pending == 1
    msg = await pull_one(nc, "Q", "a")
    assert msg is not None and msg.data == b"after" and msg.metadata.num_delivered == 1
    await msg.ack_sync()
