"""Output ownership: every output object belongs to one job. The first job to claim a bucket + key
owns it; another job naming it is refused (the API answers 409, the transcoder fails the job), so
no job can overwrite another's output. Claims live in the ``mpr-output-owners`` KV bucket."""

from __future__ import annotations

import hashlib

from nats.js.errors import KeyNotFoundError, KeyWrongLastSequenceError
from nats.js.kv import KeyValue

from .bus import retry_transient
from .jetstream import delete_at


def owner_key(bucket: str, key: str) -> str:
    """KV keys allow few characters; S3 keys allow nearly all: a digest names the object."""
    return hashlib.sha256(f"{bucket}\x00{key}".encode()).hexdigest()[:48]


class OutputOwners:
    def __init__(self, kv: KeyValue) -> None:
        self.kv = kv

    async def claim(self, bucket: str, key: str, job_id: str) -> str | None:
        """Claim ``bucket/key`` for ``job_id``: None when the job owns it (now or already), else the
        id of the job that does."""
        k = owner_key(bucket, key)
        try:
            await retry_transient(lambda: self.kv.create(k, job_id.encode()), f"claim of {bucket}/{key}")
            return None
        except KeyWrongLastSequenceError:  # claimed before: by this job (a retry) or by another
            entry = await retry_transient(lambda: self.kv.get(k), f"owner of {bucket}/{key}")
            owner = (entry.value or b"").decode()
            return None if owner == job_id else owner

    async def owner(self, bucket: str, key: str) -> str | None:
        """The job that owns ``bucket/key``, None when no job has claimed it."""
        k = owner_key(bucket, key)
        try:
            entry = await retry_transient(lambda: self.kv.get(k), f"owner of {bucket}/{key}")
        except KeyNotFoundError:
            return None
        return (entry.value or b"").decode() or None

    async def release(self, bucket: str, key: str, job_id: str) -> bool:
        """Give up ``job_id``'s claim of ``bucket/key`` (its job failed and its files were deleted), so
        that another job may write there. Only that job's claim is deleted, with a compare-and-set on
        the revision read: a claim another job made meanwhile stays. True when the claim is gone."""
        k = owner_key(bucket, key)
        try:
            entry = await retry_transient(lambda: self.kv.get(k), f"owner of {bucket}/{key}")
        except KeyNotFoundError:
            return True
        if (entry.value or b"").decode() != job_id:
            return False
        try:
            await retry_transient(
                lambda: delete_at(self.kv, k, entry.revision or 0), f"release of {bucket}/{key}"
            )
        except KeyWrongLastSequenceError:  # claimed again meanwhile (by this job's retry, or another)
            return False
        return True
