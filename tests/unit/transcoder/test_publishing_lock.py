"""A package's publishing lock: one writer at a time, a write asked for while it is held is done by the
holder (never lost), a dead holder's lock is taken over, an error releases it."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from nats.js.errors import KeyNotFoundError, KeyWrongLastSequenceError

from mpr_common.codec import encode
from mpr_transcoder.kinds.package.publishing import STALE_SECONDS, LockRecord, PublishingLock, lock_key
from tests.fakes import WRONG_LAST_ON_DELETE


class RevisionedKV:
    """JetStream KV's compare-and-set semantics: revisions per write, create/update/delete with last."""

    def __init__(self) -> None:
        self.values: dict[str, tuple[bytes, int]] = {}
        self.seq = 0

    def _write(self, key: str, value: bytes) -> int:
        self.seq += 1
        self.values[key] = (value, self.seq)
        return self.seq

    async def get(self, key):
        if key not in self.values or not self.values[key][0]:
            raise KeyNotFoundError
        value, rev = self.values[key]
        return SimpleNamespace(value=value, revision=rev)

    async def create(self, key, value):
        if key in self.values and self.values[key][0]:
            raise KeyWrongLastSequenceError()
        return self._write(key, value)

    async def update(self, key, value, last=None):
        if key not in self.values or self.values[key][1] != last:
            raise KeyWrongLastSequenceError()
        return self._write(key, value)

    async def delete(self, key, last=None):
        if last is not None and (key not in self.values or self.values[key][1] != last):
            raise WRONG_LAST_ON_DELETE  # what nats-py raises (tests/system/test_kv_compare_and_set.py)
        if key in self.values:
            self._write(key, b"")


async def test_a_write_asked_for_while_held_is_done_by_the_holder():
    kv = RevisionedKV()
    a, b = PublishingLock(kv, "a"), PublishingLock(kv, "b")
    writes: list[str] = []
    others: list[bool] = []

    async def write_a() -> None:
        writes.append("a")
        if len(writes) == 1:  # another completion arrives while a writes
            others.append(await b.run("p1", write_b))

    async def write_b() -> None:
        writes.append("b")

    assert await a.run("p1", write_a) is True
    assert others == [False]  # b left it to a...
    assert writes == ["a", "a"]  # ...and a wrote again, after b's completion was recorded
    with pytest.raises(KeyNotFoundError):
        await kv.get(lock_key("p1"))  # released
    assert await b.run("p1", write_b) is True and writes[-1] == "b"


async def test_a_dead_holders_lock_is_taken_over_once_stale_only():
    kv = RevisionedKV()
    now = [1000.0]
    await kv.create(lock_key("p1"), encode(LockRecord(holder="dead", at=now[0])))
    lock = PublishingLock(kv, "b", clock=lambda: now[0])
    writes: list[int] = []

    async def write() -> None:
        writes.append(1)

    now[0] += STALE_SECONDS - 1
    assert await lock.run("p1", write) is False and writes == []  # still held: marked for its holder
    now[0] += 2
    assert await lock.run("p1", write) is True and writes == [1]


async def test_an_error_while_writing_releases_the_lock_and_propagates():
    kv = RevisionedKV()
    lock = PublishingLock(kv, "a")

    async def broken() -> None:
        raise OSError("S3 down")

    with pytest.raises(OSError):
        await lock.run("p1", broken)
    ran: list[int] = []

    async def write() -> None:
        ran.append(1)

    assert await lock.run("p1", write) is True and ran == [1]
