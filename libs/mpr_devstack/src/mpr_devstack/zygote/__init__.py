"""A pre-forking launcher for the services of a test stack (``MPR_PRELOAD=1``).

Starting a service process costs seconds of CPU in imports alone (the API about 2.6 s, the catalog
3.3 s, moto's server 1.3 s, …), paid again by every process of every stack a test starts. The launcher
(``python -m mpr_devstack.zygote``, one per process that starts stacks) imports them once and forks a
child per service; each child sets up what a fresh ``python -m`` would have (stdio to its log file,
environment, working directory, signal handlers, process group) and runs the module as ``__main__``.
Its handle behaves as a ``subprocess.Popen``. A request the launcher cannot serve safely (its
environment differs in a variable an import read; the launcher gone) starts a plain subprocess."""

from __future__ import annotations

import os

from .client import spawn, warm_up
from .process import ZygoteProcess

PRELOAD_ENV = "MPR_PRELOAD"


def preload_requested(environ: dict[str, str] | None = None) -> bool:
    value = (os.environ if environ is None else environ).get(PRELOAD_ENV, "")
    return value.strip().lower() in ("1", "true", "yes", "on")


__all__ = ["PRELOAD_ENV", "ZygoteProcess", "preload_requested", "spawn", "warm_up"]
