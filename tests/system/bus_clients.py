"""A NATS connection as one identity that records the server's permission violations (the bus tests)."""

from __future__ import annotations

import asyncio
import re

import nats
from nats.aio.client import Client as NatsClient

from mpr_common.identities import inbox_prefix

DEADLINE = 30.0  # seconds for the server's answers on a loaded machine
VIOLATION = re.compile(r'permissions violation for (publish|subscription) to "([^"]+)"', re.IGNORECASE)


def subject_matches(pattern: str, subject: str) -> bool:
    """Whether a NATS subject pattern (``*`` one token, ``>`` the rest) matches ``subject``."""
    p, t = pattern.split("."), subject.split(".")
    for i, tok in enumerate(p):
        if tok == ">":
            return len(t) > i
        if i >= len(t) or (tok != "*" and tok != t[i]):
            return False
    return len(p) == len(t)


class Client:
    """A connection that records the server's permission violations as (operation, subject)."""

    def __init__(self) -> None:
        self.violations: list[tuple[str, str]] = []
        self.nc: NatsClient | None = None
        self._reported = asyncio.Event()

    async def connect(self, url: str, prefix: str | None) -> Client:
        async def on_error(exc: Exception) -> None:
            m = VIOLATION.search(str(exc))
            if m:
                self.violations.append(("publish" if m[1].lower() == "publish" else "subscribe", m[2]))
                self._reported.set()

        opts = {"inbox_prefix": prefix} if prefix else {}
        self.nc = await nats.connect(url, error_cb=on_error, max_reconnect_attempts=0, **opts)
        return self

    async def refused(self, expected: set[tuple[str, str]]) -> set[tuple[str, str]]:
        """Wait (up to DEADLINE) until each of ``expected`` has been refused; every violation seen.
        (nats-py reports the server's error in lower case: subjects are compared so.)"""
        assert self.nc is not None
        expected = {(op, x.lower()) for op, x in expected}
        await self.nc.flush()  # the server answers in order: violations come before the PONG
        try:
            async with asyncio.timeout(DEADLINE):
                while not expected <= set(self.violations):
                    self._reported.clear()
                    await self._reported.wait()
        except TimeoutError:
            pass  # the caller's assertion names what is missing
        return set(self.violations)

    async def close(self) -> None:
        if self.nc is not None:
            await self.nc.close()


async def connect_as(url: str, identity: str, prefix: str | None = "own") -> Client:
    return await Client().connect(url, inbox_prefix(identity) if prefix == "own" else prefix)
