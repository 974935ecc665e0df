"""Running a job's independent steps at once."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable


async def together(*steps: Awaitable[object]) -> None:
    """Run ``steps`` at once; the first failure (or the caller's cancellation) stops the others, which
    are awaited before it is raised: no step outlives the call."""
    tasks = [asyncio.ensure_future(step) for step in steps]
    try:
        await asyncio.gather(*tasks)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
