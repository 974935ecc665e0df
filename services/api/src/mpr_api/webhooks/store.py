"""Subscriptions in WEBHOOKS_KV, one key per subscription id.

Listing reads the bucket's stream message by message (STREAM.MSG.GET, next by subject) instead of a
KV watch: a watch creates a consumer, and only the setup identity manages consumers. The list is
cached and read again only when the bucket's stream has moved on (one STREAM.INFO per check), so the
dispatcher sees a new, changed or deleted subscription from its next batch on.

Secrets are written sealed (:mod:`.sealing`) and read as stored: ``store.box`` opens them to sign."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import cast

import msgspec
from nats.js import JetStreamContext
from nats.js.errors import KeyNotFoundError, KeyWrongLastSequenceError, NotFoundError
from nats.js.kv import KeyValue

from mpr_common import subjects as s
from mpr_common.codec import decode, encode
from mpr_common.errors import Conflict

from .model import Subscription
from .sealing import SecretBox

_UPDATE_TRIES = 5


class SubscriptionStore:
    def __init__(
        self, js: JetStreamContext, kv: KeyValue, box: SecretBox, bucket: str = s.WEBHOOKS_KV
    ) -> None:
        self.js = js
        self.kv = kv
        self.box = box
        self.stream = f"KV_{bucket}"
        self.prefix = f"$KV.{bucket}."
        self._cache: tuple[int, list[Subscription]] | None = None
        self._lock = asyncio.Lock()

    def _sealed(self, sub: Subscription) -> bytes:
        """What is written: never a secret in clear (one from before sealing is sealed now)."""
        previous = sub.previous_secret
        return encode(
            msgspec.structs.replace(
                sub,
                secret=self.box.sealed(sub.secret, sub.id),
                previous_secret=self.box.sealed(previous, sub.id) if previous else previous,
            )
        )

    async def create(self, sub: Subscription) -> None:
        await self.kv.create(sub.id, self._sealed(sub))

    async def get(self, sub_id: str) -> Subscription | None:
        found = await self._entry(sub_id)
        return found[0] if found else None

    async def _entry(self, sub_id: str) -> tuple[Subscription, int] | None:
        try:
            entry = await self.kv.get(sub_id)
        except KeyNotFoundError:
            return None
        if not entry.value:
            return None
        # nats-py types an entry's revision optional; an entry read from the bucket has one
        return decode(entry.value, Subscription), cast(int, entry.revision)

    async def update(
        self, sub_id: str, change: Callable[[Subscription], Subscription]
    ) -> Subscription | None:
        """Apply ``change`` to the stored subscription, again if another replica wrote it meanwhile."""
        for _ in range(_UPDATE_TRIES):
            found = await self._entry(sub_id)
            if found is None:
                return None
            new = change(found[0])
            try:
                await self.kv.update(sub_id, self._sealed(new), last=found[1])
                return new
            except KeyWrongLastSequenceError:
                continue
        raise Conflict(f"webhook {sub_id} is being changed by someone else; try again")

    async def delete(self, sub_id: str) -> bool:
        if await self._entry(sub_id) is None:
            return False
        await self.kv.delete(sub_id)
        return True

    async def all(self) -> list[Subscription]:
        """Every subscription, oldest first."""
        last = (await self.js.stream_info(self.stream)).state.last_seq
        if self._cache is not None and self._cache[0] == last:
            return self._cache[1]
        async with self._lock:
            subs: list[Subscription] = []
            seq = 0
            while True:
                try:
                    msg = await self.js.get_msg(self.stream, seq + 1, subject=f"{self.prefix}>", next=True)
                except NotFoundError:
                    break
                seq = msg.seq or seq + 1
                operation = (msg.headers or {}).get("KV-Operation")
                if operation in ("DEL", "PURGE") or not msg.data:
                    continue
                subs.append(decode(msg.data, Subscription))
            subs.sort(key=lambda sub: sub.created_at)
            self._cache = (max(last, seq), subs)
            return subs
