"""Scene changes of a source, the pure part: what is kept of them per source object (the value of
``SCENES_KV``, written and read by the transcoders) and how the job kinds choose their moments from
them. The detection itself (one low-resolution FFmpeg ``scdet`` pass) is the transcoder's
(``mpr_transcoder.scene_store``).

- **Kept per object version.** An entry is keyed by the object's bucket and key (hashed: a KV key has
  a narrow alphabet) and holds the ETag and size it was detected at: an object overwritten since is
  analysed again. While one transcoder detects, the entry says so (``detecting``, with when): another
  job on the same source waits for its result instead of decoding the source a second time.
- **Moments.** A picture or clip that stands for a scene is taken :data:`SCENE_LEAD` after its cut
  (past a transition's first frame); the source's start is a scene's start too. A kind asks for as many
  moments as it would spread evenly, and gets the scene starts nearest those even moments, or the even
  moments themselves when the source has too few scenes (:func:`scene_moments`).
- **Key frames.** An encode that is free to place its key frames (one file, no segments to align
  across renditions) gets one at every cut at least :data:`MIN_KEY_GAP` after the previous one
  (:func:`key_frame_times`): a flash or a strobe does not turn every frame into a key frame."""

from __future__ import annotations

import hashlib
import math
from collections.abc import Sequence
from typing import Final, Literal

import msgspec

SCENE_LEAD = 0.2  # seconds after a cut where the new scene's picture is taken
MIN_KEY_GAP = 1.0  # seconds: forced key frames at least this far apart
DETECTING: Final = "detecting"
DONE: Final = "done"


class SourceScenes(msgspec.Struct, frozen=True, kw_only=True):
    """One source object's scene changes (``SCENES_KV``), or the claim of the transcoder detecting them."""

    bucket: str
    key: str
    etag: str
    size: int
    state: Literal["detecting", "done"]
    scenes: list[float] = []  # seconds from the source's start of each cut, in order (0 is never one)
    threshold: float | None = None  # scdet's score from which a frame starts a scene
    by: str = ""  # the transcoder instance that detected them (or detects them)
    at: float = 0.0  # Unix time of the claim, then of the result
    elapsed: float | None = None  # seconds the detection took

    def is_of(self, bucket: str, key: str, etag: str, size: int) -> bool:
        """Whether this entry describes that very version of the object."""
        return (self.bucket, self.key, self.etag, self.size) == (bucket, key, etag, size)


def scenes_key(bucket: str, key: str) -> str:
    """The KV key of an object's scenes: a digest of its bucket and key (any object key fits)."""
    return hashlib.sha256(f"{bucket}\0{key}".encode()).hexdigest()[:40]


def _ms(seconds: float) -> float:
    """``seconds`` to the millisecond below (never past the time it stands for)."""
    return math.floor(seconds * 1000) / 1000


def _starts(duration: float, scenes: Sequence[float], include_start: bool) -> list[float]:
    cuts = sorted({c for c in scenes if math.isfinite(c) and 0.0 < c < duration})
    return [0.0, *cuts] if include_start else cuts


def scene_moments(
    duration: float,
    scenes: Sequence[float],
    even: Sequence[float],
    length: float = 0.0,
    *,
    lead: float = SCENE_LEAD,
    include_start: bool = True,
) -> tuple[list[float], str]:
    """Where ``len(even)`` pictures (``length`` 0) or clips of ``length`` seconds start in a source of
    ``duration`` seconds, and how they were chosen: ``lead`` after the scene starts nearest the ``even``
    moments (``"scenes"``), each scene used once and no two clips overlapping, when the source has that
    many scene starts (its start among them with ``include_start``); else ``even`` itself (``"even"``).
    Every moment lies within ``[0, duration - length]``; they come sorted."""
    room = max(0.0, duration - length)
    fallback = sorted(even)
    starts = _starts(duration, scenes, include_start)
    if not even or len(starts) < len(even):
        return fallback, "even"
    candidates = sorted({_ms(min(room, s + lead)) for s in starts})
    picked: list[float] = []
    for moment in fallback:
        free = [c for c in candidates if c not in picked and all(abs(c - p) >= length for p in picked)]
        if not free:
            return fallback, "even"
        picked.append(min(free, key=lambda c: (abs(c - moment), c)))
    return sorted(picked), "scenes"


def key_frame_times(
    scenes: Sequence[float], start: float = 0.0, end: float | None = None, min_gap: float = MIN_KEY_GAP
) -> list[float]:
    """Seconds from ``start`` (an output of the source's ``[start, end)``) of the cuts an encode
    forces key frames at: those inside the range, each at least ``min_gap`` after the output's start
    (its first frame is a key frame anyway) and after the previous one kept."""
    out: list[float] = []
    last = 0.0
    for cut in sorted(c for c in scenes if math.isfinite(c)):
        t = cut - start
        if t - last < min_gap or (end is not None and cut >= end):
            continue
        out.append(_ms(t))  # never past the cut's frame
        last = t
    return out
