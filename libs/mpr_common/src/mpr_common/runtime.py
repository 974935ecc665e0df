"""How every service's process runs its event loop, and what it does once started.

uvloop where it is installed (it is a dependency of every service; the Lambda handler may run without
it): the services spend much of their CPU in the loop's own work (sockets, futures, timers), which
uvloop does in C. Measured on the catalog: ... see docs/benchmarks.md.

``freeze_startup_heap()`` once a service has started: the modules, schemas and the app it built stay
for the life of the process, and a full collection walked them all again, over and over (about 11 µs
of every POST /api/jobs on this machine's API, a sixth of that request's CPU in process). Frozen, the
collector walks only what was made since."""

from __future__ import annotations

import asyncio
import gc
from collections.abc import Coroutine
from typing import Any, TypeVar

T = TypeVar("T")


def run(main: Coroutine[Any, Any, T]) -> T:
    """``asyncio.run(main)`` on uvloop when it is installed."""
    try:
        import uvloop
    except ImportError:  # pragma: no cover - every service depends on it
        return asyncio.run(main)
    return uvloop.run(main)


def freeze_startup_heap() -> None:
    gc.collect()
    gc.freeze()
