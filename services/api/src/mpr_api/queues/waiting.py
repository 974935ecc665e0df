"""Finding a queued job's request in the jobs stream, where it waits for a transcoder: the one a move
copies onto another class (the exact message, so nothing the catalog does not record is lost), and the
proof that the job waits in a transcoders' queue at all (a job run by Lambda never does).

A moved copy is read at the sequence its move recorded. A request as first published is found by a binary
search over its class's requests by the time it was made (``requested_at``, which the catalog records),
then a short walk; a retried one (made long before it was published again) by the server's clock, from
ever earlier starts before the catalog saw it. Never before the oldest request the class's consumer has
not acknowledged, and bounded, so a move never walks a whole backlog."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Protocol, cast

from nats.js import JetStreamContext
from nats.js.errors import NotFoundError

from mpr_common import subjects as s
from mpr_common.bus import MSG_ID
from mpr_common.codec import DecodeError, ValidationError, decode
from mpr_common.events import JobRequested
from mpr_common.jobs import job_identity
from mpr_common.jobstate import QueuePlace, move_number

# Where the search by the server's clock starts, in seconds before the request must have been stored by.
SEARCH_BACK = (0.05, 0.5, 5.0, 60.0)
MAX_WALK = 5_000  # requests read on the class's subject (in all) before giving up


class StoredMsg(Protocol):
    """A message read from the jobs stream by sequence (nats-py's ``RawStreamMsg``), as it is when the
    server sends it: nats-py types every field optional, but a stored message always has its sequence."""

    @property
    def seq(self) -> int: ...
    @property
    def data(self) -> bytes | None: ...
    @property
    def headers(self) -> dict[str, str] | None: ...
    @property
    def time(self) -> datetime | None: ...


@dataclass(frozen=True)
class Waiting:
    request: JobRequested
    place: QueuePlace  # which copy it is (class, move, generation) and its stream sequence


def _time(msg: StoredMsg) -> float:
    return msg.time.timestamp() if msg.time else 0.0


async def _read(js: JetStreamContext, seq: int, subject: str = ">") -> StoredMsg | None:
    """The first message at or after ``seq`` on ``subject``; None past the end."""
    try:
        return cast(StoredMsg, await js.get_msg(s.JOBS_STREAM, seq, subject=subject, next=True))
    except NotFoundError:
        return None


async def seq_at(js: JetStreamContext, at: float, lo: int, hi: int) -> int:
    """The first stream sequence in [lo, hi] stored at or after ``at`` (``hi`` + 1 when none)."""
    hi += 1
    while lo < hi:
        mid = (lo + hi) // 2
        msg = await _read(js, mid)
        if msg is None or msg.seq >= hi or _time(msg) >= at:
            hi = mid
        else:
            lo = msg.seq + 1
    return lo


def _copy(msg: StoredMsg, job_id: str, cls: str) -> Waiting | None:
    """The request in ``msg`` if it is a copy of job ``job_id``."""
    try:
        req = job_identity(decode(msg.data or b"", JobRequested), (msg.headers or {}).get(MSG_ID), msg.seq)
    except (DecodeError, ValidationError):
        return None
    if req.job_id != job_id:
        return None
    place = QueuePlace(priority=cls, move=move_number(msg.headers), retry=req.retry, seq=msg.seq)
    return Waiting(req, place)


async def seq_made_at(js: JetStreamContext, subject: str, at: float, lo: int, hi: int) -> int:
    """The first stream sequence in [lo, hi] of a request on ``subject`` made (``requested_at``) at or
    after ``at`` (``hi`` + 1 when none): the publisher's own clock, so a skew with the server's does not
    matter, as long as one publisher's requests are stored in the order it made them."""
    hi += 1
    while lo < hi:
        mid = (lo + hi) // 2
        msg = await _read(js, mid, subject)
        if msg is None or msg.seq >= hi:
            hi = mid
            continue
        try:
            made = decode(msg.data or b"", JobRequested).requested_at
        except (DecodeError, ValidationError):
            made = at  # no order to follow past it
        if made >= at:
            hi = mid
        else:
            lo = msg.seq + 1
    return lo


async def _walk(
    js: JetStreamContext, subject: str, begin: int, end: int, job_id: str, cls: str, retry: int, limit: int
) -> Waiting | None:
    """Job ``job_id``'s request as first published (generation ``retry``) among the next ``limit``
    requests on ``subject`` from ``begin`` to ``end``."""
    seq = begin
    for _ in range(limit):
        msg = await _read(js, seq, subject)
        if msg is None or msg.seq > end:
            return None
        found = _copy(msg, job_id, cls)
        if found is not None and found.request.retry == retry and found.place.move == 0:
            return found
        seq = msg.seq + 1
    return None


async def find_waiting(
    js: JetStreamContext,
    job_id: str,
    cls: str,
    retry: int,
    made_at: float,
    stored_by: float,
    known: QueuePlace | None,
) -> Waiting | None:
    """The request of job ``job_id`` (generation ``retry``) waiting in class ``cls``: made at
    ``made_at`` (its ``requested_at``), stored before ``stored_by``; ``known``: the copy its last move
    recorded. None when it is not there."""
    if known is not None and known.seq:
        msg = await _read(js, known.seq, s.requested_subject(known.priority))
        found = _copy(msg, job_id, known.priority) if msg is not None and msg.seq == known.seq else None
        return found if found is not None and found.place.same_copy(known) else None
    info = await js.consumer_info(s.JOBS_STREAM, s.transcoders_durable(cls))
    last = (await js.stream_info(s.JOBS_STREAM)).state.last_seq
    floor = info.ack_floor.stream_seq + 1  # a request still waiting comes after every acknowledged one
    subject = s.requested_subject(cls)
    limit = MAX_WALK // (len(SEARCH_BACK) + 1)
    if not retry:  # where its time of making puts it among the requests of its class
        begin = await seq_made_at(js, subject, made_at, floor, last)
        found = await _walk(js, subject, begin, last, job_id, cls, retry, limit)
        if found is not None:
            return found
    # By the server's clock: stored shortly before ``stored_by``, the later the likelier.
    end = last
    for back in SEARCH_BACK:
        begin = await seq_at(js, stored_by - back, floor, last)
        found = await _walk(js, subject, begin, end, job_id, cls, retry, limit)
        if found is not None or begin <= floor:
            return found
        end = begin - 1
    return None


def age(msg: StoredMsg) -> float:
    """Seconds since ``msg`` was stored."""
    return max(0.0, (datetime.now(UTC) - msg.time).total_seconds()) if msg.time else 0.0
