"""A fake NATS for in-process API tests: JetStream with its de-duplication by Nats-Msg-Id and its
max payload, catalog queries answered from a dict, and the KV calls the API makes."""

from __future__ import annotations

from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

from nats.errors import MaxPayloadError
from nats.errors import TimeoutError as NatsTimeoutError
from nats.js.api import PubAck
from nats.js.errors import BadRequestError, KeyNotFoundError, KeyWrongLastSequenceError

from mpr_api.http import limits as L
from mpr_common import subjects as s
from mpr_common.catalog_requests import REQUEST_TYPES, AssetsPage, JobReply
from mpr_common.codec import decode, encode
from mpr_common.errors import NotFound, error_headers

# nats-py's KeyValue.delete(last=…) at a revision the key has moved past raises a bare BadRequestError
# (update raises KeyWrongLastSequenceError): fakes raise what the real one does.
WRONG_LAST_ON_DELETE = BadRequestError(code=400, err_code=10071, description="wrong last sequence")


@dataclass
class Msg:
    data: bytes
    headers: dict[str, str] | None = None


@dataclass
class FakeJetStream:
    """Stores by Nats-Msg-Id as JetStream does (a stored id comes back as a duplicate of the original's
    sequence) and, like nats-server, refuses a message larger than its max payload. ``fail``: the
    broker does not answer (nothing stored); ``lose_acks``: stored, but the ack never arrives."""

    published: list[tuple[str, bytes, dict]] = field(default_factory=list)
    seq_of: dict[str, int] = field(default_factory=dict)
    fail: bool = False
    lose_acks: bool = False

    async def publish(self, subject, payload, headers=None, timeout=None) -> PubAck:
        if self.fail:
            raise NatsTimeoutError
        if len(payload) > L.NATS_MAX_PAYLOAD:
            raise MaxPayloadError
        msg_id = (headers or {}).get("Nats-Msg-Id")
        duplicate = msg_id in self.seq_of
        if not duplicate:
            self.published.append((subject, payload, headers or {}))
            if msg_id:
                self.seq_of[msg_id] = len(self.published)
        if self.lose_acks:
            raise NatsTimeoutError
        seq = self.seq_of[msg_id] if msg_id else len(self.published)
        return PubAck(stream=s.JOBS_STREAM, seq=seq, duplicate=duplicate)


@dataclass
class FakeNats:
    """Answers the catalog's queries: jobs by id from ``jobs`` (job_id → JobView), the ``assets``
    (AssetView) whose key starts with a listing's prefix, no job in a list."""

    js: FakeJetStream = field(default_factory=FakeJetStream)
    jobs: dict[str, Any] = field(default_factory=dict)
    assets: list[Any] = field(default_factory=list)
    requests: list[tuple[str, Any]] = field(default_factory=list)
    is_connected: bool = True

    def jetstream(self) -> FakeJetStream:
        return self.js

    async def request(self, subject, payload, timeout=None) -> Msg:
        q: Any = decode(payload, REQUEST_TYPES[subject])  # the typed request of its subject
        self.requests.append((subject, q))
        if subject == s.CATALOG_ASSETS_LIST:
            found = [a for a in self.assets if a.key.startswith(q.prefix or "")]
            return Msg(encode(AssetsPage(assets=found, total=len(found))))
        if subject == s.CATALOG_JOBS_LIST:
            return Msg(encode(REQUEST_TYPES[subject].reply()))  # an empty page
        job = self.jobs.get(q.id or "")
        if job is None:
            return Msg(b"", error_headers(NotFound(f"job {q.id} not found")))
        return Msg(encode(JobReply(job=job)))


class FakeKV:
    """The KV calls the API makes, with JetStream KV's semantics (create refuses an existing key)."""

    def __init__(self) -> None:
        self.values: dict[str, bytes] = {}

    async def put(self, key, value) -> None:
        self.values[key] = value

    async def create(self, key, value) -> None:
        if key in self.values:
            raise KeyWrongLastSequenceError()
        self.values[key] = value

    async def get(self, key):
        if key not in self.values:
            raise KeyNotFoundError
        return SimpleNamespace(value=self.values[key])

    async def delete(self, key) -> None:
        self.values.pop(key, None)


class RevisionKV:
    """JetStream KV's semantics for what the owners, states and packages need: revisions, create,
    compare-and-set update and delete (a deleted key reads as not found and can be created again)."""

    def __init__(self) -> None:
        self.values: dict[str, tuple[bytes, int]] = {}
        self.revision = 0
        self.reads: list[str] = []  # every key read, in order: what a test counts

    def _next(self) -> int:
        self.revision += 1
        return self.revision

    async def put(self, key, value) -> int:
        self.values[key] = (value, self._next())
        return self.revision

    async def create(self, key, value) -> int:
        if key in self.values:
            raise KeyWrongLastSequenceError()
        return await self.put(key, value)

    async def get(self, key):
        self.reads.append(key)
        if key not in self.values:
            raise KeyNotFoundError
        value, revision = self.values[key]
        return SimpleNamespace(value=value, revision=revision)

    async def update(self, key, value, last=None) -> int:
        if key not in self.values or self.values[key][1] != last:
            raise KeyWrongLastSequenceError()
        return await self.put(key, value)

    async def delete(self, key, last=None) -> bool:
        if last is not None and self.values.get(key, (b"", 0))[1] != last:
            raise WRONG_LAST_ON_DELETE  # what nats-py raises (tests/system/test_kv_compare_and_set.py)
        self.values.pop(key, None)
        return True
