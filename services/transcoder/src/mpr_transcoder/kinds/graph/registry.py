"""The job graphs a transcoder runs, found by the kind of a parent or of a child."""

from __future__ import annotations

from typing import Any

from mpr_common.events import JobRequested
from mpr_common.jobs import is_graph_child

from .runner import JobGraph


class JobGraphs:
    """Each graph by its parent's kind (``noun``); none until the worker binds them."""

    def __init__(self, *graphs: JobGraph[Any]) -> None:
        self.by_parent: dict[str, JobGraph[Any]] = {g.noun: g for g in graphs}

    def of_parent(self, kind: str) -> JobGraph[Any] | None:
        return self.by_parent.get(kind)

    def of_child(self, child: JobRequested) -> JobGraph[Any] | None:
        """The graph ``child`` claims to belong to; None for a job that is no graph's child."""
        if not is_graph_child(child):
            return None
        return next((g for g in self.by_parent.values() if child.kind in g.child_kinds), None)
