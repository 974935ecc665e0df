"""The transcoders' schedule of queue classes, simulated slot by slot: bulk never holds urgent work up
(a waiting urgent job starts in the next slot or the one after), urgent work never holds bulk up forever
(every class with work is served within k * N slots), and no slot is left idle while a class has work."""

from __future__ import annotations

import random

import pytest

from mpr_common.events import PRIORITIES
from mpr_transcoder.worker.scheduler import Scheduler

BACKLOG = 10**9  # a class that never runs out of work


def take(sched: Scheduler, queues: dict[str, int], eligible=PRIORITIES) -> str | None:
    """One free slot, as the worker fills it: the first class in the order that has a job."""
    for cls in sched.order(eligible):
        if queues[cls] > 0:
            queues[cls] -= 1
            sched.served(cls)
            return cls
    return None


def gaps(served: list[str | None], cls: str) -> list[int]:
    """Slots between consecutive services of ``cls`` (from the start for the first)."""
    at = [-1] + [i for i, c in enumerate(served) if c == cls]
    return [b - a for a, b in zip(at, at[1:], strict=False)]


@pytest.mark.parametrize("share_every", [2, 3, 4, 8])
@pytest.mark.parametrize("seed", range(5))
def test_a_waiting_urgent_job_starts_in_the_next_slot_or_the_one_after(share_every, seed):
    rnd = random.Random(seed)
    sched = Scheduler(PRIORITIES, share_every)
    queues = {"urgent": 0, "normal": BACKLOG, "bulk": BACKLOG}
    passed_over, worst = 0, 0
    urgent_slots = 0
    for _ in range(5_000):
        queues["urgent"] += rnd.random() < 0.6  # urgent work comes and goes; the others never run out
        waiting = queues["urgent"] > 0
        cls = take(sched, queues)
        urgent_slots += cls == "urgent"
        passed_over = passed_over + 1 if waiting and cls != "urgent" else 0
        worst = max(worst, passed_over)
    assert worst <= 1  # at most one share slot between an urgent job and its start
    assert urgent_slots > 2_000  # and urgent work got most slots


@pytest.mark.parametrize("share_every", [2, 3, 4, 8])
def test_every_class_with_work_is_served_within_k_times_n_slots(share_every):
    sched = Scheduler(PRIORITIES, share_every)
    queues = dict.fromkeys(PRIORITIES, BACKLOG)
    served = [take(sched, queues) for _ in range(20 * share_every * len(PRIORITIES))]
    bound = len(PRIORITIES) * share_every
    for cls in PRIORITIES:
        assert max(gaps(served, cls)) <= bound, (cls, served)
    # Share slots alternate between the two classes passed over: each gets one slot in 2N …
    for cls in ("normal", "bulk"):
        assert served.count(cls) == len(served) // (2 * share_every)
    # … and urgent work all the others.
    assert served.count("urgent") == len(served) - 2 * (len(served) // (2 * share_every))


@pytest.mark.parametrize("seed", range(10))
def test_bulk_progresses_under_any_mix_of_urgent_and_normal_work(seed):
    rnd = random.Random(seed)
    share_every = rnd.choice([2, 3, 4, 6])
    sched = Scheduler(PRIORITIES, share_every)
    queues = {"urgent": 0, "normal": 0, "bulk": BACKLOG}
    served = []
    for _ in range(3_000):
        queues["urgent"] += rnd.randint(0, 2)  # more urgent and normal work than slots, in bursts
        queues["normal"] += rnd.randint(0, 2)
        served.append(take(sched, queues))
    assert max(gaps(served, "bulk")) <= len(PRIORITIES) * share_every
    assert None not in served


def test_no_slot_is_idle_while_a_class_has_work():
    sched = Scheduler(PRIORITIES, 3)
    queues = {"urgent": 0, "normal": 0, "bulk": 7}
    assert [take(sched, queues) for _ in range(8)] == ["bulk"] * 7 + [None]
    queues.update(urgent=2, normal=1)
    served = [take(sched, queues) for _ in range(3)]
    assert sorted(served) == ["normal", "urgent", "urgent"]


def test_a_paused_class_is_never_offered_and_waits_longest_once_resumed():
    sched = Scheduler(PRIORITIES, 4)
    queues = dict.fromkeys(PRIORITIES, BACKLOG)
    running = ("urgent", "normal")
    served = [take(sched, queues, running) for _ in range(40)]
    assert "bulk" not in served
    assert all("bulk" not in sched.order(running) for _ in range(3))
    # Resumed: it has waited longest, so the next share slot is its (within N slots).
    after = [take(sched, queues) for _ in range(4)]
    assert "bulk" in after


def test_the_order_prefers_urgent_until_a_share_slot_is_due():
    sched = Scheduler(PRIORITIES, 3)
    assert sched.order(PRIORITIES) == ["urgent", "normal", "bulk"]
    sched.served("urgent")
    assert sched.order(PRIORITIES) == ["urgent", "normal", "bulk"]
    sched.served("urgent")
    # Two slots in a row by preference: this one goes to whoever waited longest.
    assert sched.order(PRIORITIES) == ["normal", "bulk", "urgent"]
    sched.served("bulk")  # normal had no job: bulk took it
    assert sched.order(["bulk", "urgent"]) == ["urgent", "bulk"]


def test_a_single_class_replica_always_takes_its_class():
    sched = Scheduler(("bulk",), 4)
    queues = {"bulk": 3}
    assert [take(sched, queues, ("bulk",)) for _ in range(3)] == ["bulk"] * 3


@pytest.mark.parametrize(("classes", "share_every"), [((), 4), (("urgent", "urgent"), 4), (PRIORITIES, 1)])
def test_nonsense_is_refused(classes, share_every):
    with pytest.raises(ValueError):
        Scheduler(classes, share_every)
