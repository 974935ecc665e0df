"""Fair shares of a queue class between job graphs: a graph publishes its children a window at a time.

A class's durable consumer delivers in stream order. A graph that put all its children on the queue at
once (a two-hour title is hundreds of chunks) would make every job submitted after it wait for all of
them. So a graph *releases* its children in its plan's order, keeping at most a window of them
outstanding (released and not completed); each completion releases the next ones. A job submitted
meanwhile is then behind at most a window of each running graph's children in stream order: the class
goes round the running graphs and the jobs between them, instead of one title after the other.

Children are *outstanding* from their release until they complete, *queued* until a transcoder takes
them (their lease), *running* after. A release tops the graph's queued children up to a target, and the
window (at most outstanding) follows: ``max(lead, running + max(floor, idle))``, each term for a reason:

- ``floor`` (``TRANSCODER_RELEASE_WINDOW``, 8 by default): the graph's queued children, ready for the
  next free slot, and what a job submitted meanwhile waits behind at most (per running graph). The
  transcoder whose child completed releases before it acknowledges, so its freed slot finds the next
  child queued: a title keeps every slot it runs on. 8 chunks of 20 s (the default) are about 2 min 40 s
  of source: a short job waits that long on one slot, a fraction of it on a fleet, instead of for the
  whole title.
- ``running``: the window is never a cap on the slots a title runs on. It grows with them.
- ``idle``: transcoders free right now, measured rather than configured: the class consumer's waiting
  pull requests (``num_waiting`` of its consumer info: a transcoder with a free slot keeps one pull
  waiting on each class it serves, and a pull waits only while its class has nothing to deliver). A
  title alone on a hundred idle transcoders takes all of them at its next completion, however small
  ``floor`` is. (One pull per transcoder whatever its free slots: with ``TRANSCODER_CONCURRENCY`` above
  1 the rest are filled from the floor and at the next completions.)
- ``lead``: the children that must all be out before the graph is of any use (a progressive package
  plays once its sound and every rung's first chunk are up; a package that is not chunked only once
  every child is): they go out in the first release, or playing would wait for children not released.

Releasing is idempotent: once the queued children reach the target, a release run again (a redelivery)
releases nothing until a child starts or completes. Several graphs that release at the same instant may
each count the same idle slots: they overshoot once, which the next completions absorb (a release is
never withdrawn).

Pure: the caller reads what runs, what completed and where the release stands (:mod:`.package.releasing`
keeps that mark in KV with compare-and-set, so a release is never lost nor done twice)."""

from __future__ import annotations

from collections.abc import Sequence, Set


def outstanding(order: Sequence[str], released: int, finished: Set[str]) -> int:
    """Children released (the first ``released`` of ``order``) and not finished."""
    return sum(1 for child in order[:released] if child not in finished)


def window(floor: int, lead: int, running: int, idle: int) -> int:
    """How many children of a graph may be outstanding after this release (see the module's docstring)."""
    return max(lead, running + max(floor, idle))


def release_up_to(
    order: Sequence[str],
    released: int,
    finished: Set[str],
    running: Set[str],
    floor: int,
    lead: int = 0,
    idle: int = 0,
) -> int:
    """Where the release of ``order`` (a graph's children, in the order they go out) stands after this
    one: children ``[released, result)`` go out now. ``running``: the released children a transcoder has
    taken. Finished children are passed over without taking room (a retried graph's children that
    completed before); the others are released until :func:`window` of them are outstanding."""
    if not 0 <= released <= len(order):
        raise ValueError(f"released {released} is outside 0..{len(order)}")
    out = [c for c in order[:released] if c not in finished]
    taken = sum(1 for c in out if c in running)
    room = window(floor, lead, taken, idle) - len(out)
    upto = released
    while upto < len(order) and (order[upto] in finished or room > 0):
        if order[upto] not in finished:
            room -= 1
        upto += 1
    return upto
