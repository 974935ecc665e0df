"""The paused queue classes, as the queues KV bucket (``mpr-queues``: class -> paused or not, written by
the API) says: a transcoder stops fetching a paused class at once (the jobs it is running go on) and
fetches again as soon as the class resumes.

Followed by a plain subscription to the bucket's subjects rather than a KV watch: a watch needs the right
to create consumers, and the deliver subject of a consumer escapes its creator's permissions. The entries
are read again now and then, for what a reconnect made the subscription miss."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Iterable

from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.js.errors import KeyNotFoundError
from nats.js.kv import KeyValue

from mpr_common import subjects as s

log = logging.getLogger("mpr.transcoder")

RELOAD_EVERY = 15.0
_KV_OPERATION = "KV-Operation"  # DEL or PURGE on a removed entry


def is_paused(value: bytes | None) -> bool:
    """A class's entry: paused only when it says so (no entry, or a removed one: it runs)."""
    return value == s.QUEUE_PAUSED


class PauseFlags:
    def __init__(self, kv: KeyValue, classes: Iterable[str]) -> None:
        self.kv = kv
        self.classes = tuple(classes)
        self.paused: set[str] = set()
        self.changed = asyncio.Event()  # set on every change; cleared by whoever waits for the next
        self.loaded = asyncio.Event()  # set once every class's entry has been read
        self._updates = dict.fromkeys(self.classes, 0)  # updates seen per class, to order reads after them

    def apply(self, cls: str, value: bytes | None) -> None:
        if cls not in self._updates:
            return
        was = cls in self.paused
        if is_paused(value):
            self.paused.add(cls)
        else:
            self.paused.discard(cls)
        if was != (cls in self.paused):
            log.info("queue class %s %s", cls, "paused" if cls in self.paused else "resumed")
            self.changed.set()

    async def _on_update(self, msg: Msg) -> None:
        cls = msg.subject.rsplit(".", 1)[-1]
        if cls in self._updates:
            self._updates[cls] += 1
            removed = (msg.headers or {}).get(_KV_OPERATION) in ("DEL", "PURGE")
            self.apply(cls, None if removed else msg.data)

    async def reload(self) -> None:
        """Every class's entry as stored; one that changed while it was read keeps the newer value."""
        for cls in self.classes:
            seen = self._updates[cls]
            try:
                value = (await self.kv.get(cls)).value
            except KeyNotFoundError:  # never set, or removed
                value = None
            if self._updates[cls] == seen:
                self.apply(cls, value)

    async def follow(self, nc: Client, stopping: asyncio.Event) -> None:
        """Keep the flags current until ``stopping``."""
        sub = await nc.subscribe(f"$KV.{s.QUEUES_KV}.>", cb=self._on_update)
        try:
            while not stopping.is_set():
                try:
                    await self.reload()
                    self.loaded.set()
                except Exception as exc:  # NATS reconnecting: the next round reads them
                    log.warning("reading the queue flags failed: %s", exc)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stopping.wait(), RELOAD_EVERY if self.loaded.is_set() else 1.0)
        finally:
            with contextlib.suppress(Exception):
                await sub.unsubscribe()
