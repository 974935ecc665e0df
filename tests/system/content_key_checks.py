"""What an encrypted package's key looks like where it must never be clear: its entry in the content-keys
KV bucket and the messages of the jobs stream published since the package was submitted (read as the
setup identity, which may read both)."""

from __future__ import annotations

import asyncio

import nats

from mpr_common import subjects as s
from mpr_common.identities import inbox_prefix
from mpr_devstack.stack import Stack


def stored_key_and_job_messages(stack: Stack, package_id: str, seq_before: int) -> tuple[bytes, list[bytes]]:
    """The package's KV entry, and each jobs-stream message after ``seq_before`` (body and headers)."""

    async def read() -> tuple[bytes, list[bytes]]:
        assert stack.nats is not None
        nc = await nats.connect(stack.nats.url, inbox_prefix=inbox_prefix("setup"))
        try:
            js = nc.jetstream()
            stored = (await (await js.key_value(s.CONTENT_KEYS_KV)).get(package_id)).value or b""
            last = (await js.stream_info(s.JOBS_STREAM)).state.last_seq
            bodies = []
            for seq in range(seq_before + 1, last + 1):
                try:
                    msg = await js.get_msg(s.JOBS_STREAM, seq)
                except Exception:  # noqa: BLE001 - retired by the catalog or removed: nothing to read
                    continue
                bodies.append((msg.data or b"") + repr(msg.headers).encode())
            return stored, bodies
        finally:
            await nc.close()

    return asyncio.run(read())
