"""Moving a CMAF media segment along the title's timeline: what places a chunk's segments, encoded from
time 0, where the whole rendition would have them.

A media segment as FFmpeg's HLS muxer writes it is ``styp``, ``sidx``, ``moof`` (``mfhd``, then per
track ``traf`` with ``tfhd``, ``tfdt``, ``trun``) and ``mdat``. Where a fragment plays is its ``tfdt``
(baseMediaDecodeTime, in the track's timescale) and the index's ``sidx`` earliest presentation time; its
place in the sequence is the ``mfhd`` sequence number. Those fields are rewritten in place: the bytes keep
their length, so no box size and no ``trun`` data offset moves, and nothing else changes. A field too
narrow for its new value (a version 0 ``tfdt`` past 2**32 ticks) is refused, never widened.
"""

from __future__ import annotations

import struct
from fractions import Fraction

from .cmaf import iter_boxes

_U32 = 2**32
_U64 = 2**64


def shift_fragments(data: bytes, *, ticks: int, timescale: int, sequence: int) -> bytes:
    """``data`` (one media segment) with every track fragment's decode time and the segment index's
    earliest presentation time moved by ``ticks`` of ``timescale`` (the track's), and every movie
    fragment's sequence number by ``sequence``. Raises ValueError, and nothing else, when ``data`` is not
    a media segment or a value would leave its field."""
    if timescale <= 0:
        raise ValueError(f"timescale must be positive, not {timescale}")
    out = bytearray(data)
    fragments = 0
    for kind, s, e in iter_boxes(data):
        if kind == "moof":
            fragments += 1
            _shift_moof(out, s, e, ticks, sequence)
        elif kind == "sidx":
            _shift_sidx(out, s, e, ticks, timescale)
    if not fragments:
        raise ValueError("not a media segment: no moof box")
    return bytes(out)


def _shift_moof(out: bytearray, start: int, end: int, ticks: int, sequence: int) -> None:
    for kind, s, e in iter_boxes(out, start, end):
        if kind == "mfhd":
            _add(out, s + 4, e, ">I", sequence, "mfhd sequence number")
        elif kind == "traf":
            for kind2, s2, e2 in iter_boxes(out, s, e):
                if kind2 == "tfdt":
                    _add(out, s2 + 4, e2, ">Q" if _version(out, s2, e2) else ">I", ticks, "tfdt decode time")


def _shift_sidx(out: bytearray, start: int, end: int, ticks: int, timescale: int) -> None:
    version = _version(out, start, end)
    (own,) = _read(out, start + 8, end, ">I")
    if own <= 0:
        raise ValueError("sidx with a zero timescale")
    moved = Fraction(ticks * own, timescale)
    if moved.denominator != 1:
        raise ValueError(f"sidx timescale {own} cannot hold a move of {ticks}/{timescale} s")
    _add(out, start + 12, end, ">Q" if version else ">I", int(moved), "sidx earliest presentation time")


def _version(data: bytearray, start: int, end: int) -> int:
    if start >= end:
        raise ValueError("full box without its version")
    return data[start]


def _read(data: bytearray, pos: int, end: int, fmt: str) -> tuple[int, ...]:
    if pos + struct.calcsize(fmt) > end:
        raise ValueError("box too short for its fields")
    return struct.unpack_from(fmt, data, pos)


def _add(out: bytearray, pos: int, end: int, fmt: str, delta: int, what: str) -> None:
    (value,) = _read(out, pos, end, fmt)
    new = value + delta
    if not 0 <= new < (_U64 if fmt == ">Q" else _U32):
        raise ValueError(f"{what} {value} moved by {delta} leaves its field")
    struct.pack_into(fmt, out, pos, new)
