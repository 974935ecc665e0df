"""Dead letters (MPR_DLQ): listed newest first, and a job request among them replayed once.

Replaying a letter whose job the catalog knows is a retry of that job (its next generation: a request of
a job that ended is never run again as it was); a letter whose job it does not know (an undecodable
request, one without a job_id) is published again as it was, under a new de-duplication id. Either way
the replay is recorded first in the mpr-dlq-replays bucket with a create that only one caller can win,
so a second replay is refused. The record is the original message's (its sequence in MPR_JOBS): the
letters that the catalog and a transcoder each made of one undecodable request are replayed once."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable
from typing import TypeVar

from nats.aio.client import Client
from nats.js.errors import KeyNotFoundError, KeyWrongLastSequenceError, NotFoundError
from nats.js.kv import KeyValue

from mpr_common import subjects as s
from mpr_common.bus import MSG_ID, retry_transient
from mpr_common.codec import DecodeError, ValidationError, decode, encode
from mpr_common.errors import BadRequest, Conflict, NotFound, Unavailable
from mpr_common.events import PRIORITIES, DeadLetter, JobRequested, now

from .schemas import DeadLetterOut, DeadLetterPage, Replay
from .service import RetryService

log = logging.getLogger("mpr.api")
T = TypeVar("T")

# Only job requests may be replayed: anything else is another service's own fact (a child job only its
# transcoder may publish, an object event only the scanner, …).
REPLAYABLE = frozenset(s.requested_subject(p) for p in PRIORITIES)
MAX_EXAMINED = 5000  # letters one listing reads at most (a filter that matches few): then ``next``


def replay_key(letter: DeadLetterOut) -> str:
    """One replay per original message: by its stream sequence, else (not a stream message) the letter's."""
    return f"jobs-{letter.stream_seq}" if letter.stream_seq else f"dlq-{letter.seq}"


def replay_msg_id(letter: DeadLetterOut) -> str:
    return f"replay-{replay_key(letter)}"


def letter_out(seq: int, dlq_subject: str, data: bytes, replayed: Replay | None = None) -> DeadLetterOut:
    """A stored dead letter as listed; something on a DLQ subject that is not one is listed as it is."""
    try:
        letter = decode(data, DeadLetter)
    except (DecodeError, ValidationError) as exc:
        letter = DeadLetter(
            subject=dlq_subject,
            error=f"not a dead letter: {exc}",
            payload=data.decode("utf-8", "replace"),
            at=0.0,
        )
    return DeadLetterOut(
        seq=seq,
        dlq_subject=dlq_subject,
        subject=letter.subject,
        stream_seq=letter.stream_seq,
        deliveries=letter.deliveries,
        error=letter.error,
        payload=letter.payload,
        job_id=letter.job_id,
        at=letter.at,
        replayable=letter.subject in REPLAYABLE,
        replayed=replayed,
    )


class DeadLetterService:
    def __init__(self, nc: Client, replays_kv: KeyValue, retries: RetryService) -> None:
        self.js = nc.jetstream()
        self.replays = replays_kv
        self.retries = retries

    async def list(self, subject: str | None, limit: int, after: int | None) -> DeadLetterPage:
        """Letters newest first (``after``: only those older than that sequence), filtered by the DLQ
        subject; ``next`` continues the listing."""
        state = (await _ask(self.js.stream_info(s.DLQ_STREAM))).state
        seq = min(state.last_seq, after - 1) if after else state.last_seq
        first = max(1, state.first_seq or 1)
        found: list[tuple[int, str, bytes]] = []
        examined = 0
        while seq >= first and len(found) < limit and examined < MAX_EXAMINED:
            examined += 1
            try:
                msg = await _ask(self.js.get_msg(s.DLQ_STREAM, seq))
            except NotFoundError:  # deleted, or aged out meanwhile
                msg = None
            if msg is not None and (subject is None or msg.subject == subject):
                found.append((seq, msg.subject or "", msg.data or b""))
            seq -= 1
        items = [letter_out(n, subj, data) for n, subj, data in found]
        replays = await asyncio.gather(*(self._replay_of(i) for i in items))
        for item, replay in zip(items, replays, strict=True):
            item.replayed = replay
        return DeadLetterPage(items=items, next=seq + 1 if seq >= first else None)

    async def _replay_of(self, letter: DeadLetterOut) -> Replay | None:
        if not letter.replayable:
            return None
        try:
            entry = await _ask(self.replays.get(replay_key(letter)))
        except KeyNotFoundError:
            return None
        return decode(entry.value or b"", Replay)

    async def _letter(self, seq: int) -> DeadLetterOut:
        try:
            msg = await _ask(self.js.get_msg(s.DLQ_STREAM, seq))
        except NotFoundError:
            raise NotFound(f"dead letter {seq} not found") from None
        return letter_out(seq, msg.subject or "", msg.data or b"")

    async def replay(self, seq: int, requested_by: str = "api") -> Replay:
        """Publish a dead job request again, once: 404 for no such letter, 400 for one that is not a job
        request, 409 for one replayed already (or whose job is not failed or cancelled)."""
        letter = await self._letter(seq)
        if not letter.replayable:
            raise BadRequest(
                f"dead letter {seq} was published on {letter.subject}: only job requests "
                f"({', '.join(sorted(REPLAYABLE))}) are replayed"
            )
        key = replay_key(letter)
        claim = Replay(seq=seq, at=now(), by=requested_by, subject=letter.subject, job_id=letter.job_id)
        try:
            await _ask(self.replays.create(key, encode(claim)))
        except KeyWrongLastSequenceError:
            done = await self._replay_of(letter)
            how = f" (dead letter {done.seq}, at {done.at:.0f} by {done.by})" if done is not None else ""
            raise Conflict(f"dead letter {seq} was replayed already{how}") from None
        try:
            replay = await self._publish(letter, claim, requested_by)
        except BaseException:
            await self._release(key)
            raise
        try:
            await self.replays.put(key, encode(replay))
        except Exception as exc:  # the claim stands: the letter is not replayed twice either way
            log.warning("replay of dead letter %d not recorded in full: %s", seq, exc)
        return replay

    async def _publish(self, letter: DeadLetterOut, claim: Replay, requested_by: str) -> Replay:
        job_id = letter.job_id or _job_id(letter.payload)
        if job_id:
            try:
                job = await self.retries.retry(job_id, requested_by=f"replay:{requested_by}")
            except NotFound:
                pass  # never recorded: publish it as it was
            else:
                return Replay(
                    seq=claim.seq,
                    at=claim.at,
                    by=requested_by,
                    subject=letter.subject,
                    job_id=job.id,
                    retry=job.retries,
                )
        headers = {MSG_ID: replay_msg_id(letter)}
        payload = letter.payload.encode()
        try:
            await retry_transient(
                lambda: self.js.publish(letter.subject, payload, headers=headers, timeout=5.0),
                f"replay of dead letter {claim.seq}",
                attempts=3,
            )
        except Exception as exc:
            raise Unavailable(
                f"the job queue did not confirm the replay of dead letter {claim.seq}: "
                f"{str(exc) or type(exc).__name__}"
            ) from None
        return claim

    async def _release(self, key: str) -> None:
        """A replay that did not happen may be tried again."""
        try:
            await self.replays.delete(key)
        except Exception as exc:
            log.warning("dead letter %s stays marked replayed: %s", key, exc)


async def _ask(call: Awaitable[T]) -> T:
    """A read or write of MPR_DLQ or the replays bucket: an answer that it is not there passes; no
    answer at all is a 503."""
    try:
        return await call
    except (NotFoundError, KeyNotFoundError, KeyWrongLastSequenceError):
        raise
    except Exception as exc:
        raise Unavailable(f"the dead letter queue did not answer: {str(exc) or type(exc).__name__}") from None


def _job_id(payload: str) -> str | None:
    """The job a dead request names, when it can be read at all."""
    try:
        return decode(payload.encode(), JobRequested).job_id or None
    except (DecodeError, ValidationError):
        return None
