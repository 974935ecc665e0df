"""The one place the transcoder starts a process: FFmpeg or ffprobe, exec of an argument list (no shell),
stdin closed, under :func:`mpr_common.mediainfo.child_setup` (dies with its parent, address space capped)."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Mapping
from dataclasses import dataclass

from mpr_common.mediainfo import child_setup


async def spawn(
    args: list[str],
    *,
    max_memory: int | None = None,
    new_session: bool = False,
    env: Mapping[str, str] | None = None,
) -> asyncio.subprocess.Process:
    """Start ``args`` with stdout and stderr piped; ``new_session``: in a process group of its own;
    ``env``: variables added to this process's environment."""
    return await asyncio.create_subprocess_exec(
        *args,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        start_new_session=new_session,
        preexec_fn=child_setup(max_memory),
        env={**os.environ, **env} if env else None,
    )


@dataclass(frozen=True, slots=True)
class Captured:
    returncode: int | None
    stdout: bytes
    stderr: bytes


async def capture(args: list[str], timeout: float, *, max_memory: int | None = None) -> Captured:
    """Run ``args`` to its end and return what it printed. Raises ``TimeoutError`` after ``timeout``
    seconds; timed out or cancelled, the process is killed first."""
    proc = await spawn(args, max_memory=max_memory)
    try:
        out, err = await asyncio.wait_for(proc.communicate(), timeout)
    except BaseException:
        if proc.returncode is None:
            proc.kill()
            await asyncio.shield(proc.wait())
        raise
    return Captured(proc.returncode, out, err)
