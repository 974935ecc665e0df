"""mpr_transcoder.together: a job's independent steps at once, none outliving a failure."""

from __future__ import annotations

import asyncio

import pytest

from mpr_transcoder.together import together


async def test_the_first_failure_stops_the_others_and_is_raised():
    stopped: list[str] = []

    async def slow(name: str) -> None:
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            stopped.append(name)
            raise

    async def fails() -> None:
        await asyncio.sleep(0)
        raise ValueError("step failed")

    with pytest.raises(ValueError, match="step failed"):
        await together(slow("a"), fails(), slow("b"))
    assert sorted(stopped) == ["a", "b"]  # both stopped before together returned


async def test_a_cancelled_caller_stops_every_step():
    stopped: list[int] = []

    async def step(i: int) -> None:
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            stopped.append(i)
            raise

    task = asyncio.ensure_future(together(*(step(i) for i in range(3))))
    await asyncio.sleep(0.01)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert sorted(stopped) == [0, 1, 2]


async def test_steps_that_succeed_all_run_to_their_end():
    done: list[int] = []

    async def step(i: int) -> None:
        await asyncio.sleep(0.001 * i)
        done.append(i)

    await together(*(step(i) for i in range(4)))
    assert sorted(done) == [0, 1, 2, 3]
