"""What a lost compare-and-set looks like on a real nats-server, and that the code built on it (the
package publishing lock) recognises it: the in-process fakes raise what these tests see."""

from __future__ import annotations

import nats
import pytest
from nats.js.errors import BadRequestError, KeyWrongLastSequenceError

from mpr_common.jetstream import WRONG_LAST_SEQUENCE, delete_at
from mpr_devstack.servers import NatsServer, free_port
from mpr_transcoder.kinds.package.publishing import PublishingLock
from tests.fakes import WRONG_LAST_ON_DELETE

pytestmark = pytest.mark.system


@pytest.fixture
async def kv(tmp_path):
    srv = NatsServer(tmp_path / "js", port=free_port(), log_path=tmp_path / "nats.log").start()
    nc = await nats.connect(srv.url)
    try:
        yield await nc.jetstream().create_key_value(bucket="cas", history=1)
    finally:
        await nc.close()
        srv.stop()


async def test_a_lost_delete_is_a_bad_request_that_delete_at_names(kv):
    first = await kv.put("k", b"1")
    await kv.put("k", b"2")
    with pytest.raises(BadRequestError) as raw:  # nats-py's own delete: not KeyWrongLastSequenceError
        await kv.delete("k", last=first)
    assert not isinstance(raw.value, KeyWrongLastSequenceError)
    assert raw.value.err_code in WRONG_LAST_SEQUENCE
    assert type(raw.value) is type(WRONG_LAST_ON_DELETE)  # the fakes raise the same
    with pytest.raises(KeyWrongLastSequenceError):
        await delete_at(kv, "k", first)
    assert (await kv.get("k")).value == b"2"  # nothing deleted


async def test_a_write_asked_for_while_the_lock_is_held_is_done_by_the_holder(kv):
    a, b = PublishingLock(kv, "a"), PublishingLock(kv, "b")
    writes: list[str] = []

    async def write_a() -> None:
        writes.append("a")
        if len(writes) == 1:  # another completion arrives while a writes: b marks the lock and leaves
            assert await b.run("p1", write_b) is False

    async def write_b() -> None:
        writes.append("b")

    assert await a.run("p1", write_a) is True
    assert writes == ["a", "a"]  # a wrote again for b, then released
    assert await b.run("p1", write_b) is True  # released: free to take
