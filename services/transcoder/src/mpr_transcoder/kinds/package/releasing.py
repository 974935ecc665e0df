"""What a package's release window needs of the package: the children that must be out before it plays
(:func:`lead`), and weights that add up to 1 (:func:`with_shares`).

The catalog weighs a package's progress by its children's ``weight`` over the children it has seen:
with the weights adding up to 1, a child not released yet counts as not started instead of being left
out."""

from __future__ import annotations

import msgspec

from .children import PackagePlan, is_subtitle


def lead(plan: PackagePlan) -> int:
    """The first children of ``plan.jobs`` that must all be out before the package plays: up to the
    last whole rendition (the sound) or first chunk of a rung for a chunked package (subtitle tracks are
    not needed: they join the playlists as they complete), every child for one that is not chunked (it
    plays once complete)."""
    jobs = plan.jobs
    if not plan.spans:
        return len(jobs)
    first = [
        i
        for i, c in enumerate(jobs)
        if c.kind == "rendition" and not is_subtitle(c) and (c.chunk is None or c.chunk.index == 0)
    ]
    return first[-1] + 1 if first else 0


def with_shares(plan: PackagePlan) -> PackagePlan:
    """``plan`` with its children's weights scaled to add up to 1 (a chunk's is its rung's share times its
    length's: :func:`.children.chunk_child`)."""
    total = sum(c.weight for c in plan.children) + sum(r.weight for r in plan.chunked)
    if total <= 0:
        return plan
    replace = msgspec.structs.replace
    return replace(
        plan,
        children=[replace(c, weight=c.weight / total) for c in plan.children],
        chunked=[replace(r, weight=r.weight / total) for r in plan.chunked],
    )
