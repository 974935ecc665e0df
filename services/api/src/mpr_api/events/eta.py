"""When a running job will finish: estimated from its progress events.

The rate measured between two progress events of the same attempt is the estimate of choice: it holds
for jobs of several FFmpeg steps, whose progress is a share of all steps while FFmpeg's speed and
written time describe only the current command. Until a second event is seen (an attempt that just
started, or a stream that joined while it ran), FFmpeg's own speed and written time are used."""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass

MIN_SPAN = 1.0  # seconds between two observations before their rate is trusted


@dataclass(frozen=True, slots=True)
class Observation:
    at: float  # when the job reported it (the event's own time)
    progress: float  # 0..100


def eta(
    progress: float,
    at: float,
    *,
    first: Observation | None = None,
    speed: float | None = None,
    out_time: float | None = None,
) -> float | None:
    """Seconds until the job ends, or None when nothing tells. ``first``: an earlier observation of
    the same attempt; ``speed`` (× realtime) and ``out_time`` (seconds written): FFmpeg's report."""
    if progress >= 100.0:
        return 0.0
    if first is not None and at - first.at >= MIN_SPAN and progress > first.progress:
        rate = (progress - first.progress) / (at - first.at)  # percent per second
        return round((100.0 - progress) / rate, 1)
    if speed and speed > 0 and out_time and out_time > 0 and progress > 0:
        remaining_media = out_time * (100.0 - progress) / progress
        return round(remaining_media / speed, 1)
    return None


class ProgressClock:
    """The earliest progress seen of each job's current attempt, for :func:`eta` (bounded: the jobs
    seen longest ago are forgotten first)."""

    def __init__(self, capacity: int = 10_000) -> None:
        self.capacity = capacity
        self._first: OrderedDict[str, tuple[int, Observation]] = OrderedDict()

    def observe(self, job_id: str, attempt: int, seen: Observation) -> Observation | None:
        """Record ``seen`` and return the observation to measure it from (None: it is the first)."""
        known = self._first.get(job_id)
        reference = None
        if (
            known is not None
            and known[0] == attempt
            and seen.at >= known[1].at
            and seen.progress >= known[1].progress
        ):
            reference = known[1]
        else:  # a new attempt, one that started over (progress went back), or an older event read late
            self._first[job_id] = (attempt, seen)
        self._first.move_to_end(job_id)
        while len(self._first) > self.capacity:
            self._first.popitem(last=False)
        return reference

    def forget(self, job_id: str) -> None:
        """The job ended, or is queued again (a retry starts its attempts anew)."""
        self._first.pop(job_id, None)

    def __len__(self) -> int:
        return len(self._first)
