"""Which queue class a transcoder's next free slot goes to: urgent work first, with a guaranteed share for
the other classes, so that bulk never holds urgent work up and urgent work never holds bulk up forever.

Slots go by preference (the classes in the order given: urgent, normal, bulk), except that after
``share_every - 1`` slots in a row given by preference, the next one is a *share* slot: it goes to the
class that has waited longest since it was last served (among those with work: the caller tries the
classes in the order returned and takes the first that has a job). Hence, with ``k`` classes that may be
fetched and ``N = share_every``:

- a job of the preferred class that is waiting when a slot frees starts in that slot or the next one:
  it waits for at most one share slot more than strict priority would make it wait;
- a class with work is served at least once in every ``k * N`` slots, however much work the classes
  before it have: it waits for at most one share slot given to each of the others, and share slots
  come every ``N`` slots.

Pure: the worker says which classes may be fetched now (served and not paused) and which one it served."""

from __future__ import annotations

from collections.abc import Iterable, Sequence


class Scheduler:
    def __init__(self, classes: Sequence[str], share_every: int) -> None:
        if not classes or len(set(classes)) != len(classes):
            raise ValueError("classes: one or more distinct queue classes, in order of preference")
        if share_every < 2:  # 1 would be round robin: no preference left
            raise ValueError("share_every must be at least 2")
        self.classes = tuple(classes)
        self.share_every = share_every
        self.slots = 0  # slots given so far
        self.streak = 0  # slots given by preference since the last share slot
        self.last_served = dict.fromkeys(self.classes, 0)  # the slot each class was last given

    @property
    def share_due(self) -> bool:
        return self.streak >= self.share_every - 1

    def order(self, eligible: Iterable[str]) -> list[str]:
        """The classes to try for the next slot, best first (only those in ``eligible``)."""
        allowed = set(eligible)
        preferred = [c for c in self.classes if c in allowed]
        if not self.share_due:
            return preferred
        rank = {c: i for i, c in enumerate(self.classes)}
        return sorted(preferred, key=lambda c: (self.last_served[c], rank[c]))

    def served(self, cls: str) -> None:
        """The slot went to ``cls`` (the first class in :meth:`order` that had a job)."""
        self.slots += 1
        self.streak = 0 if self.share_due else self.streak + 1
        self.last_served[cls] = self.slots
