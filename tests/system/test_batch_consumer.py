"""BatchConsumer on a real nats-server: every message is handled once and acked promptly, whether they
trickle in one by one or arrive by the thousand (batches then grow with the load)."""

from __future__ import annotations

import asyncio
import time

import nats
import pytest
from nats.js.api import AckPolicy, ConsumerConfig, StreamConfig

from mpr_common.bus import LONG_POLL_SECONDS, BatchConsumer, settle_batch
from mpr_common.jetstream import Client
from mpr_devstack.servers import NatsServer, free_port

pytestmark = pytest.mark.system


async def until(done, timeout: float) -> None:
    for _ in range(int(timeout / 0.05)):
        if done():
            return
        await asyncio.sleep(0.05)


@pytest.fixture
async def js(tmp_path):
    srv = NatsServer(tmp_path / "js", port=free_port(), log_path=tmp_path / "nats.log").start()
    nc = await nats.connect(srv.url)
    js = nc.jetstream()
    await js.add_stream(StreamConfig(name="S", subjects=["t.*"]))
    await js.add_consumer(
        "S", ConsumerConfig(durable_name="c", ack_policy=AckPolicy.EXPLICIT, max_ack_pending=20_000)
    )
    yield js
    await nc.close()
    srv.stop()


async def test_trickle_and_burst_are_all_handled_and_acked(js):
    seen: list[int] = []
    sizes: list[int] = []

    async def handle(msgs):
        async def work():
            await asyncio.sleep(0.002)  # a commit
            seen.extend(m.metadata.sequence.stream for m in msgs)
            sizes.append(len(msgs))

        await settle_batch(msgs, work)

    consumer = BatchConsumer(js, "S", "c", handle, batch=500)
    consumer.start()
    # A trickle with irregular gaps (what lost deliveries with FastStream's batch loop) ...
    for k in range(60):
        await js.publish("t.a", b"x")
        await asyncio.sleep(0.013 * (k % 7))
    # ... then a burst.
    await asyncio.gather(*(js.publish("t.a", b"x") for _ in range(3000)))
    await until(lambda: len(seen) >= 3060, 10)
    await consumer.stop()
    assert sorted(seen) == list(range(1, 3061))  # each once ...

    async def floor() -> int:
        return (await js.consumer_info("S", "c")).ack_floor.stream_seq

    for _ in range(50):  # ... and acked: none left for ack_wait to redeliver (acks are asynchronous)
        if await floor() == 3060:
            break
        await asyncio.sleep(0.05)
    info = await js.consumer_info("S", "c")
    assert info.ack_floor.stream_seq == 3060 and info.num_ack_pending == 0
    assert max(sizes) > 100  # the burst came in batches


async def test_a_failed_batch_is_redelivered(js):
    attempts: list[int] = []

    async def handle(msgs):
        async def work():
            attempts.append(len(msgs))
            if len(attempts) == 1:
                raise RuntimeError("database down")

        await settle_batch(msgs, work, retry_delay=0.1)

    consumer = BatchConsumer(js, "S", "c", handle)
    consumer.start()
    await js.publish("t.a", b"x")
    await until(lambda: len(attempts) >= 2, 5)
    await consumer.stop()
    assert attempts == [1, 1]


async def test_the_first_message_after_a_quiet_spell_is_handled_before_the_idle_wait_ends(js):
    """An idle consumer waits long on the server (few requests), yet a message that comes during the
    wait is handled at once, not when the batch is full or the wait ends; and stopping does not wait."""
    handled: list[float] = []

    async def handle(msgs):
        await settle_batch(msgs, _noop)
        handled.extend(time.monotonic() for _ in msgs)

    consumer = BatchConsumer(js, "S", "c", handle, batch=500)
    consumer.start()
    await asyncio.sleep(0.5)  # the consumer is now in its long wait
    for _ in range(2):
        sent = time.monotonic()
        await js.publish("t.a", b"x")
        await until(lambda: len(handled) >= 1, LONG_POLL_SECONDS)
        assert handled and handled[-1] - sent < LONG_POLL_SECONDS / 3
        handled.clear()
        await asyncio.sleep(0.5)
    began = time.monotonic()
    await consumer.stop()
    assert time.monotonic() - began < LONG_POLL_SECONDS / 3


async def _noop() -> None:
    return None


async def test_a_wait_lost_with_the_server_is_made_again_once_the_connection_is_back(tmp_path):
    """A restarted nats-server has forgotten the consumer's waiting pull: the consumer asks again as soon
    as its connection is back, so the first message after the restart is not left for the old wait's
    expiry."""
    srv = NatsServer(tmp_path / "js", port=free_port(), log_path=tmp_path / "nats.log").start()
    nc = Client()
    await nc.connect(servers=[srv.url], reconnect_time_wait=0.1, max_reconnect_attempts=-1)
    js = nc.jetstream()
    await js.add_stream(StreamConfig(name="S", subjects=["t.*"]))
    await js.add_consumer("S", ConsumerConfig(durable_name="c", ack_policy=AckPolicy.EXPLICIT))
    handled: list[float] = []

    async def handle(msgs):
        await settle_batch(msgs, _noop)
        handled.extend(time.monotonic() for _ in msgs)

    consumer = BatchConsumer(js, "S", "c", handle)
    consumer.start()
    try:
        await asyncio.sleep(0.3)  # in its long wait
        srv.kill()
        srv.start()  # same port, same store
        await until(lambda: nc.is_connected, 10)
        for _ in range(50):  # the stream is back shortly after the server
            try:
                await js.publish("t.a", b"x", timeout=0.5)
                break
            except Exception:
                await asyncio.sleep(0.1)
        sent = time.monotonic()
        await until(lambda: bool(handled), LONG_POLL_SECONDS)
        assert handled and handled[0] - sent < LONG_POLL_SECONDS / 3
    finally:
        await consumer.stop()
        await nc.close()
        srv.stop()
