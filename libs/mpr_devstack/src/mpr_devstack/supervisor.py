"""Restarts a process of the embedded stack that exits on its own, as Kubernetes restarts a pod: one
line on the terminal, and exponential backoff (capped) when it keeps dying, so that one crash (a
transcoder killed -9, an OOM) does not end a local run or a test."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from .servers import Proc

FIRST_DELAY = 1.0  # seconds before the first restart
MAX_DELAY = 30.0  # the backoff's cap
STABLE_AFTER = 60.0  # a process up this long starts again from FIRST_DELAY when it next dies


def describe_exit(returncode: int | None) -> str:
    if returncode is None:
        return "running"
    if returncode < 0:
        return f"signal {-returncode}"
    return f"status {returncode}"


@dataclass
class _Watched:
    name: str
    current: Callable[[], Proc | None]
    restart: Callable[[], object]
    started: float
    failures: int = 0  # deaths in a row, each within STABLE_AFTER of its start
    due: float | None = None  # a restart is scheduled for then


class Supervisor:
    def __init__(
        self,
        say: Callable[[str], None],
        *,
        first_delay: float = FIRST_DELAY,
        max_delay: float = MAX_DELAY,
        stable_after: float = STABLE_AFTER,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.say = say
        self.first_delay = first_delay
        self.max_delay = max_delay
        self.stable_after = stable_after
        self.clock = clock
        self.watched: list[_Watched] = []
        self.restarts = 0

    def watch(self, name: str, current: Callable[[], Proc | None], restart: Callable[[], object]) -> None:
        """``current`` returns the process as it is now (a restart replaces it); ``restart`` starts a
        new one without waiting for it to be ready (the next polls see whether it stays up)."""
        self.watched.append(_Watched(name, current, restart, started=self.clock()))

    def delay(self, failures: int) -> float:
        return min(self.max_delay, self.first_delay * 2 ** max(0, failures - 1))

    def poll(self) -> None:
        """Notices the processes that died and restarts those whose backoff has passed; never blocks."""
        now = self.clock()
        for w in self.watched:
            if w.due is not None:
                if now >= w.due:
                    self._restart(w, now)
                continue
            proc = w.current()
            if proc is None:
                continue
            if proc.alive():
                if w.failures and now - w.started >= self.stable_after:
                    w.failures = 0
                continue
            w.failures = 0 if now - w.started >= self.stable_after else w.failures
            w.failures += 1
            delay = self.delay(w.failures)
            log = f"; see {proc.log_path}" if proc.log_path else ""
            self.say(
                f"{w.name} exited ({describe_exit(proc.popen.returncode)}); restarting in {delay:g} s{log}"
            )
            w.due = now + delay

    def _restart(self, w: _Watched, now: float) -> None:
        w.due = None
        w.started = now
        try:
            w.restart()
            self.restarts += 1
        except Exception as exc:  # e.g. its port still taken: count it as one more death
            w.failures += 1
            delay = self.delay(w.failures)
            self.say(f"{w.name} could not be restarted ({exc}); trying again in {delay:g} s")
            w.due = now + delay
