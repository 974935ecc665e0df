"""Range reads that cost the range, not the object, in moto's S3 server.

moto answers every GET by reading the whole object out of its buffer (``FakeKey.value``) and then
slicing the requested range from that copy. FFmpeg opens a source with ``Range: bytes=0-`` and reopens
it at each seek: every chunk of a chunked package, every trim and every probe made moto copy the whole
source two or three times, however little of it was read. With a 290 MB source split in 105 chunks,
that was tens of CPU-seconds of the embedded S3 server and a slower start for each chunk; real S3 and
MinIO read only the range.

:func:`install` makes a GET's body a :class:`ObjectBody`: it has the object's length and slices like
bytes (so moto's own range handling works unchanged), and it reads from the buffer only what the
response sends, a piece at a time, as the client takes it (werkzeug streams an iterable body). A client
that closes early (FFmpeg seeking) stops the reading there.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Iterator
from typing import Any

PIECE = 1 << 20  # bytes read from the object's buffer at a time

_local = threading.local()  # .lazy: a GET's body is being made (see install)
_installed = False


class ObjectBody:
    """``length`` bytes of a moto ``FakeKey`` from ``start``, read when iterated."""

    def __init__(self, key: Any, start: int = 0, length: int | None = None) -> None:
        self.key = key
        self.start = start
        self.length = key.size - start if length is None else length

    def __len__(self) -> int:
        return self.length

    def __bool__(self) -> bool:
        return self.length > 0

    def __getitem__(self, window: slice) -> ObjectBody:
        if not isinstance(window, slice) or window.step not in (None, 1):
            raise TypeError("an object body is sliced by a contiguous range only")
        begin, end, _ = window.indices(self.length)
        return ObjectBody(self.key, self.start + begin, max(0, end - begin))

    def read(self, offset: int, size: int) -> bytes:
        """``size`` bytes at ``offset`` of this body (fewer at the object's end)."""
        with self.key.lock:
            buffer = self.key._value_buffer
            buffer.seek(self.start + offset)
            return buffer.read(min(size, self.length - offset))

    def __iter__(self) -> Iterator[bytes]:
        offset = 0
        while offset < self.length:
            try:
                piece = self.read(offset, PIECE)
            except (ValueError, OSError):  # the object was replaced or deleted meanwhile: end here
                return
            if not piece:
                return
            offset += len(piece)
            yield piece

    def __bytes__(self) -> bytes:
        return b"".join(self)


def install() -> None:
    """Patch moto's S3: ``get_object`` answers with an :class:`ObjectBody` instead of a copy of the
    object (every other use of ``FakeKey.value`` is unchanged)."""
    global _installed
    if _installed:
        return
    from moto.s3.models import FakeKey
    from moto.s3.responses import S3Response

    whole: property = FakeKey.__dict__["value"]

    def value(self: Any) -> Any:
        if getattr(_local, "lazy", False):
            return ObjectBody(self)
        return whole.__get__(self)

    FakeKey.value = property(value, whole.fset)  # type: ignore[method-assign,assignment]

    get_object = S3Response.get_object

    @functools.wraps(get_object)
    def lazy_get_object(self: Any) -> Any:
        _local.lazy = True
        try:
            return get_object(self)
        finally:
            _local.lazy = False

    S3Response.get_object = lazy_get_object  # type: ignore[method-assign]
    _installed = True
