"""Templates, rules and rule firings in JetStream KV buckets (made by ``mpr-setup``).

A value's revision is its KV revision (the bucket stream's sequence): it grows with every write to the
bucket, so one template's revisions increase without being consecutive. ``mpr-templates`` keeps 64 of
them per name; a deleted template keeps its history, so a job's "<name>@<revision>" still names what it
was made from. Only the calls the API's NATS identity may make are used: direct gets by key, message
gets by sequence and stream info (no consumers: listing keys reads the stream's subjects)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Generic, TypeVar, cast

from nats.js import JetStreamContext
from nats.js.errors import APIError, KeyNotFoundError, KeyWrongLastSequenceError
from nats.js.errors import NotFoundError as JsNotFoundError
from nats.js.kv import KeyValue

from mpr_common import subjects as s
from mpr_common.codec import DecodeError, ValidationError, decode, encode
from mpr_common.errors import Conflict, NotFound, Unavailable
from mpr_common.jetstream import is_wrong_last_sequence

from .rules import Firing, Rule
from .templates import Template

T = TypeVar("T")

KV_OPERATION = "KV-Operation"  # header of a delete or purge marker


@dataclass(frozen=True, slots=True)
class Stored(Generic[T]):
    key: str
    revision: int
    value: T


class VersionedStore(Generic[T]):
    """One KV bucket of msgspec values with their revisions and optimistic concurrency."""

    what = "value"

    def __init__(self, js: JetStreamContext, bucket: str, type_: type[T]) -> None:
        self.js = js
        self.bucket = bucket
        self.type = type_
        self.stream = f"KV_{bucket}"
        self.prefix = f"$KV.{bucket}."
        self._kv: KeyValue | None = None

    async def kv(self) -> KeyValue:
        if self._kv is None:
            try:
                self._kv = await self.js.key_value(self.bucket)
            except JsNotFoundError:
                raise Unavailable(f"the {self.bucket} KV bucket does not exist: run mpr-setup") from None
        return self._kv

    def _decode(self, key: str, data: bytes | None) -> T:
        try:
            return decode(data or b"", self.type)
        except (DecodeError, ValidationError) as exc:  # written by an incompatible version
            raise Unavailable(
                f"{self.what} {key!r} is stored in a form this API cannot read: {exc}"
            ) from None

    async def get(self, key: str, revision: int | None = None) -> Stored[T]:
        """The latest revision, or the one asked for (404 if it is not this key's, was a deletion, or is
        older than the history kept)."""
        kv = await self.kv()
        if revision is None:
            try:
                entry = await kv.get(key)
            except KeyNotFoundError:
                raise NotFound(f"{self.what} {key!r} not found") from None
            # nats-py types an entry's revision optional; an entry read from the bucket has one
            return Stored(key, cast(int, entry.revision), self._decode(key, entry.value))
        try:
            msg = await self.js.get_msg(self.stream, seq=revision)
        except JsNotFoundError:
            msg = None
        if msg is None or msg.subject != self.prefix + key:
            raise NotFound(f"{self.what} {key!r} has no revision {revision} (or it is no longer kept)")
        if (msg.headers or {}).get(KV_OPERATION):
            raise NotFound(f"revision {revision} of {self.what} {key!r} is its deletion")
        return Stored(key, revision, self._decode(key, msg.data))

    async def put(self, key: str, value: T, expected: int | None = None) -> tuple[int, bool]:
        """Write ``value``; returns (revision, created). ``expected``: None writes whatever is there,
        0 only if the key does not exist (or was deleted), n only if n is its latest revision (409
        otherwise)."""
        kv = await self.kv()
        data = encode(value)
        try:
            if expected is None:
                try:
                    return await kv.create(key, data), True
                except KeyWrongLastSequenceError:
                    return await kv.put(key, data), False
            if expected == 0:
                return await kv.create(key, data), True
            return await kv.update(key, data, last=expected), False
        except APIError as exc:
            if not is_wrong_last_sequence(exc):
                raise
            current = await self._latest_revision(key)
            state = f"its latest revision is {current}" if current else "it does not exist"
            wanted = "not to exist" if expected == 0 else f"to be at revision {expected}"
            raise Conflict(f"{self.what} {key!r} was expected {wanted}, but {state}") from None

    async def delete(self, key: str, expected: int | None = None) -> None:
        current = await self.get(key)  # 404 for what does not exist
        if expected is not None and expected != current.revision:
            raise Conflict(
                f"{self.what} {key!r} was expected at revision {expected}, but it is at {current.revision}"
            )
        kv = await self.kv()
        try:
            await kv.delete(key, last=current.revision)
        except APIError as exc:
            if not is_wrong_last_sequence(exc):
                raise
            raise Conflict(f"{self.what} {key!r} changed while it was being deleted") from None

    async def _latest_revision(self, key: str) -> int:
        try:
            return (await self.get(key)).revision
        except NotFound:
            return 0

    async def keys(self) -> tuple[list[str], int]:
        """Every key ever written and not purged (deleted ones included), and the bucket's last revision:
        one stream-info request, which also tells a cache whether anything changed."""
        await self.kv()
        info = await self.js.stream_info(self.stream, subjects_filter=self.prefix + ">")
        subjects = info.state.subjects or {}
        return sorted(subject[len(self.prefix) :] for subject in subjects), info.state.last_seq

    async def entries(self) -> list[Stored[T]]:
        keys, _ = await self.keys()
        return await self._values(keys)

    async def _values(self, keys: list[str]) -> list[Stored[T]]:
        out = []
        for key in keys:
            try:
                out.append(await self.get(key))
            except NotFound:  # deleted
                continue
        return out

    async def revisions(self, key: str) -> list[tuple[int, bool]]:
        """The revisions kept of ``key``, oldest first, each with whether it was a deletion."""
        await self.get_any(key)
        out: list[tuple[int, bool]] = []
        seq = 0
        while True:
            try:
                msg = await self.js.get_msg(self.stream, seq + 1, subject=self.prefix + key, next=True)
            except JsNotFoundError:
                return out
            seq = cast(int, msg.seq)  # a stored message always has its sequence (typed optional)
            out.append((seq, bool((msg.headers or {}).get(KV_OPERATION))))

    async def get_any(self, key: str) -> None:
        """404 unless ``key`` was ever written (deleted keys included)."""
        try:
            await self.js.get_msg(self.stream, subject=self.prefix + key)
        except JsNotFoundError:
            raise NotFound(f"{self.what} {key!r} not found") from None


class TemplateStore(VersionedStore[Template]):
    what = "template"

    def __init__(self, js: JetStreamContext) -> None:
        super().__init__(js, s.TEMPLATES_KV, Template)


class RuleStore(VersionedStore[Rule]):
    """Rules, and a cache of all of them for the rule engine, re-read only when the bucket changed."""

    what = "rule"

    def __init__(self, js: JetStreamContext) -> None:
        super().__init__(js, s.RULES_KV, Rule)
        self._cached: tuple[int, list[Stored[Rule]]] | None = None

    async def current(self) -> list[Stored[Rule]]:
        """Every rule as it is now (one stream-info request when nothing changed)."""
        keys, last = await self.keys()
        if self._cached is None or self._cached[0] != last:
            self._cached = (last, await self._values(keys))
        return self._cached[1]


class FiringStore:
    """Claims of rules on object versions (``mpr-rule-firings``): the first create wins, on any replica."""

    def __init__(self, js: JetStreamContext) -> None:
        self.store = VersionedStore(js, s.RULE_FIRINGS_KV, Firing)
        self.store.what = "firing"

    async def claim(self, firing_id: str, firing: Firing) -> tuple[int, Firing | None]:
        """(revision of the claim, None) when this call claimed it; (its revision, the existing
        claim) when it was claimed before."""
        kv = await self.store.kv()
        try:
            return await kv.create(firing_id, encode(firing)), None
        except KeyWrongLastSequenceError:
            existing = await self.store.get(firing_id)
            return existing.revision, existing.value

    async def mark(self, firing_id: str, firing: Firing, revision: int) -> None:
        """Record how a claim ended; a claim that changed meanwhile (another delivery ended it) stays."""
        kv = await self.store.kv()
        try:
            await kv.update(firing_id, encode(firing), last=revision)
        except KeyWrongLastSequenceError:
            pass

    async def get(self, firing_id: str) -> Firing | None:
        try:
            return (await self.store.get(firing_id)).value
        except NotFound:
            return None
