"""One writer at a time for what a job graph publishes (a package's playlists, a transcode's join).

A progressive package's media playlists grow as its chunks complete, on whichever transcoders they
complete: two writers that each list what they saw could land out of order, and an EVENT playlist must
never shrink (a player would lose its place), nor lose its ``#EXT-X-ENDLIST`` to a late progressive write.
So every write of a package's playlists, and its completion, happens under a lock kept in the
``mpr-packages`` KV bucket (key ``<package id>.publishing``), taken with compare-and-set:

- a writer that finds the lock held marks it dirty (compare-and-set of a counter) and leaves: the holder
  is bound to write again;
- the holder writes, then releases only if nothing was marked since it looked (delete at the revision it
  last saw); else it reads again and writes again;
- a lock left by a writer that died is taken over once it is older than :data:`STALE_SECONDS` (the
  holder refreshes it before each write). The chunk job whose completion that writer was publishing is
  not acked, so its redelivery comes back here and takes it over.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable

import msgspec
from nats.js.errors import KeyNotFoundError, KeyWrongLastSequenceError
from nats.js.kv import KeyValue

from mpr_common.bus import retry_transient
from mpr_common.codec import decode, encode
from mpr_common.jetstream import delete_at

# Longer than any write of a package's playlists and manifests takes (a few S3 puts).
STALE_SECONDS = 60.0


class LockRecord(msgspec.Struct, kw_only=True):
    holder: str
    at: float
    dirty: int = 0  # writes asked for while held


def lock_key(package_id: str) -> str:
    return f"{package_id}.publishing"


class PublishingLock:
    def __init__(self, kv: KeyValue, instance: str, clock: Callable[[], float] = time.time) -> None:
        self.kv = kv
        self.instance = instance
        self.clock = clock

    async def _entry(self, key: str) -> tuple[LockRecord | None, int]:
        try:
            entry = await retry_transient(lambda: self.kv.get(key), f"lock {key}")
        except KeyNotFoundError:
            return None, 0
        if not entry.value:  # a delete marker
            return None, entry.revision or 0
        return decode(entry.value, LockRecord), entry.revision or 0

    async def _cas(self, key: str, record: LockRecord, revision: int | None) -> int | None:
        """Write ``record`` if the key is still at ``revision`` (None: absent); its new revision, or
        None when another writer got there first."""
        value = encode(record)
        try:
            if revision is None:
                return await self.kv.create(key, value)
            return await self.kv.update(key, value, last=revision)
        except KeyWrongLastSequenceError:
            return None

    async def _take(self, key: str) -> int | None:
        """The lock's revision once taken; None when it is held (and now marked dirty for its holder)."""
        while True:
            record, revision = await self._entry(key)
            now = self.clock()
            if record is None or now - record.at > STALE_SECONDS:
                mine = LockRecord(holder=self.instance, at=now)
                taken = await self._cas(key, mine, revision if revision else None)
                if taken is not None:
                    return taken
                continue
            marked = msgspec.structs.replace(record, dirty=record.dirty + 1)
            if await self._cas(key, marked, revision) is not None:
                return None

    async def _release(self, key: str, revision: int) -> int | None:
        """Released (None) unless someone marked the lock since ``revision``: then the lock refreshed
        to this writer again, at its new revision."""
        try:
            await delete_at(self.kv, key, revision)
            return None
        except KeyWrongLastSequenceError:
            pass
        while True:
            record, current = await self._entry(key)
            if record is None or record.holder != self.instance:  # taken over as stale: theirs now
                return None
            mine = LockRecord(holder=self.instance, at=self.clock())
            renewed = await self._cas(key, mine, current)
            if renewed is not None:
                return renewed

    async def _abandon(self, key: str) -> None:
        """Release the lock after a failed write, if it is still this writer's (else: left stale, taken
        over after STALE_SECONDS)."""
        try:
            record, revision = await self._entry(key)
            if record is not None and record.holder == self.instance:
                await delete_at(self.kv, key, revision)
        except Exception:
            pass

    async def run(self, package_id: str, write: Callable[[], Awaitable[None]]) -> bool:
        """Run ``write`` under the package's lock, again as long as others asked for a write meanwhile;
        False when another writer held the lock (it writes for this one). An exception in ``write``
        releases the lock and propagates (the caller's job is redelivered and comes back)."""
        key = lock_key(package_id)
        revision = await self._take(key)
        if revision is None:
            return False
        try:
            while revision is not None:
                await write()
                revision = await self._release(key, revision)
        except BaseException:
            await self._abandon(key)
            raise
        return True
