"""mpr_common.jetstream against a real nats-server: the acks, de-duplication and errors of nats-py's
own JetStream publish, through one reply subscription per connection."""

from __future__ import annotations

import asyncio

import pytest
from nats.errors import TimeoutError as NatsTimeoutError
from nats.js.api import StorageType, StreamConfig
from nats.js.errors import APIError, KeyWrongLastSequenceError, NoStreamResponseError

from mpr_common.bus import MSG_ID, connect, publish_event
from mpr_common.events import JobCancel
from mpr_common.identities import inbox_prefix
from mpr_common.jetstream import Client, JetStream
from mpr_common.settings import NatsSettings
from mpr_devstack.servers import NatsServer

pytestmark = pytest.mark.system


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    srv = NatsServer(tmp_path_factory.mktemp("js")).start()
    yield srv
    srv.stop()


@pytest.fixture
async def nc(server):
    nc = await connect(NatsSettings(url=server.url), "test-acks")
    js = nc.jetstream()
    await js.add_stream(
        StreamConfig(name="T", subjects=["t.>"], storage=StorageType.FILE, duplicate_window=60)
    )
    await js.add_stream(StreamConfig(name="ONE", subjects=["one.>"], max_msgs=1, discard="new"))
    yield nc
    await js.delete_stream("T")
    await js.delete_stream("ONE")
    await nc.close()


async def test_connect_gives_the_lean_client_and_contexts_share_its_acks(nc):
    assert isinstance(nc, Client)
    a, b = nc.jetstream(), nc.jetstream()
    assert isinstance(a, JetStream) and a._acks is b._acks


async def test_acks_name_stream_and_sequence_and_a_repeated_msg_id_is_a_duplicate(nc):
    js = nc.jetstream()
    acks = await asyncio.gather(*(js.publish(f"t.{i}", b"x", headers={MSG_ID: f"m{i}"}) for i in range(50)))
    assert len({a.seq for a in acks}) == 50  # each its own answer, none mixed up
    assert {a.stream for a in acks} == {"T"} and not any(a.duplicate for a in acks)
    again = await js.publish("t.7", b"x", headers={MSG_ID: "m7"})
    assert again.duplicate and again.seq == acks[7].seq
    info = await js.stream_info("T")
    assert info.state.messages == 50


async def test_publish_event_goes_through_it(nc):
    ack = await publish_event(nc.jetstream(), "t.cancel", JobCancel(job_id="j1"), msg_id="c-j1")
    assert ack.stream == "T" and not ack.duplicate


async def test_a_subject_no_stream_takes_is_no_stream_response(nc):
    with pytest.raises(NoStreamResponseError):
        await nc.jetstream().publish("nowhere.x", b"x", timeout=2)


async def test_a_stream_error_is_nats_py_api_error(nc):
    js = nc.jetstream()
    await js.publish("one.a", b"x")
    with pytest.raises(APIError) as err:  # discard new: the stream is full
        await js.publish("one.b", b"x")
    assert err.value.err_code == 10077
    with pytest.raises(APIError):  # expected stream header checked by the server
        await js.publish("t.x", b"x", stream="ONE")


async def test_kv_create_twice_is_wrong_last_sequence(nc):
    js = nc.jetstream()
    kv = await js.create_key_value(bucket="acks_kv")
    try:
        await kv.create("k", b"1")
        with pytest.raises(KeyWrongLastSequenceError):
            await kv.create("k", b"2")
        assert (await kv.get("k")).value == b"1"
    finally:
        await js.delete_key_value("acks_kv")


async def test_no_answer_in_time_is_a_nats_timeout(nc, server):
    # A plain core subscriber on the subject: it receives the message and never answers. It subscribes on
    # the publishing connection itself: the server reads that connection's SUB before its PUB, so there is
    # a subscriber when the message comes (from another connection, a loaded server could still answer
    # "no responders", another error, now and then).
    async def ignore(msg) -> None:
        pass

    sub = await nc.subscribe("silent.x", cb=ignore)
    try:
        with pytest.raises(NatsTimeoutError):
            await nc.jetstream().publish("silent.x", b"x", timeout=0.3)
        assert nc.jetstream()._acks._waiting == {}  # nothing left waiting
    finally:
        await sub.unsubscribe()


async def test_acks_come_to_the_identitys_own_inbox(server):
    """An identity may read only its own inboxes (mpr_common.identities): the acks' one subscription is
    under its prefix. (This server has no authorization: the user only names the prefix.)"""
    nc = await connect(NatsSettings(url=server.url, user="publisher", password="x"), "test-prefix")
    js = nc.jetstream()
    await js.add_stream(StreamConfig(name="P", subjects=["p.>"], storage=StorageType.MEMORY))
    try:
        ack = await js.publish("p.x", b"x")
        assert ack.stream == "P"
        assert js._acks._prefix is not None and js._acks._prefix.startswith(inbox_prefix("publisher") + ".")
    finally:
        await js.delete_stream("P")
        await nc.close()
