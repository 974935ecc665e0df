"""The bounds and defaults of a job's watermark and of a preview's animation, and their validation: each
value is either normalised (defaults filled in) or refused with a :class:`~.jobs.JobRequestError` naming
the field it concerns (``watermark.opacity``), never anything else. Pure, shared by the API (400) and the
transcoders (a failed job)."""

from __future__ import annotations

import math
import unicodedata
from typing import Any

import msgspec

from .events import WATERMARK_POSITIONS, PreviewOptions, Watermark
from .keys import InvalidKeyError, validate_key
from .request_errors import JobRequestError

# Watermark: margin in output pixels; opacity 0 (invisible) to 1 (opaque); an image's width as a share
# of the output's width, a text's height as a share of the output's height.
MAX_WATERMARK_MARGIN = 512
DEFAULT_WATERMARK_WIDTH = 0.15
MIN_WATERMARK_WIDTH, MAX_WATERMARK_WIDTH = 0.01, 1.0
DEFAULT_WATERMARK_SIZE = 0.05
MIN_WATERMARK_SIZE, MAX_WATERMARK_SIZE = 0.01, 0.5
MAX_WATERMARK_TEXT = 200  # characters
# The watermark image: a PNG or JPEG of at most this many bytes and pixels a side (it is read by every
# rendition of a package, and decoded once per command).
MAX_WATERMARK_BYTES = 5 * 1024 * 1024
MAX_WATERMARK_SIDE = 4096
WATERMARK_FORMATS = ("png_pipe", "jpeg_pipe")  # FFmpeg's demuxers of the two image formats allowed
WATERMARK_KINDS = ("transcode", "package", "rendition")

# Preview: bounds of PreviewOptions' fields (defaults: PreviewOptions()).
MIN_PREVIEW_CLIPS, MAX_PREVIEW_CLIPS = 1, 20
MIN_PREVIEW_CLIP_SECONDS, MAX_PREVIEW_CLIP_SECONDS = 0.2, 5.0
MIN_PREVIEW_WIDTH, MAX_PREVIEW_WIDTH = 32, 1280
MIN_PREVIEW_FPS, MAX_PREVIEW_FPS = 1.0, 30.0
PREVIEW_EXTENSIONS = (".webp", ".gif")  # the output key's extension chooses the format


def _error(field: str, message: str) -> JobRequestError:
    return JobRequestError(f"{field}: {message}", field=field)


def _converted(raw: Any, kind: type[msgspec.Struct], name: str) -> Any:
    """``raw`` (a mapping, or the struct) as ``kind``, or a field error naming where it is wrong."""
    if isinstance(raw, kind):
        return raw
    try:
        return msgspec.convert(raw, kind)
    except msgspec.ValidationError as exc:
        msg = str(exc)
        where = msg.rpartition(" - at `$.")[2].rstrip("`") if " - at `$." in msg else ""
        field = f"{name}.{where.split('.')[0].split('[')[0]}" if where else name
        raise JobRequestError(f"{name}: {msg}", field=field) from None


def _number(value: Any, field: str, lo: float, hi: float) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise _error(field, "must be a number")
    if not math.isfinite(value) or not lo <= value <= hi:
        raise _error(field, f"must be between {lo:g} and {hi:g}")
    return float(value)


def normalize_watermark(raw: Any) -> Watermark:
    """The watermark ``raw`` describes (a :class:`Watermark` or its JSON form), with its defaults."""
    wm: Watermark = _converted(raw, Watermark, "watermark")
    if (wm.key is None) == (wm.text is None):
        raise _error("watermark", "give either key (an image in the source bucket) or text")
    if wm.position not in WATERMARK_POSITIONS:
        raise _error("watermark.position", f"must be one of {', '.join(WATERMARK_POSITIONS)}")
    margin = _number(wm.margin, "watermark.margin", 0, MAX_WATERMARK_MARGIN)
    if margin != int(margin):
        raise _error("watermark.margin", "must be a whole number of pixels")
    opacity = _number(wm.opacity, "watermark.opacity", 0.0, 1.0)
    if wm.key is not None:
        try:
            validate_key(wm.key)
        except InvalidKeyError as exc:
            raise _error("watermark.key", str(exc)) from None
        if wm.size is not None:
            raise _error("watermark.size", "is the size of a text watermark; an image takes width")
        width = DEFAULT_WATERMARK_WIDTH if wm.width is None else wm.width
        width = _number(width, "watermark.width", MIN_WATERMARK_WIDTH, MAX_WATERMARK_WIDTH)
        return Watermark(key=wm.key, position=wm.position, margin=int(margin), opacity=opacity, width=width)
    assert wm.text is not None
    _check_text(wm.text)
    if wm.width is not None:
        raise _error("watermark.width", "is the width of an image watermark; a text takes size")
    size = DEFAULT_WATERMARK_SIZE if wm.size is None else wm.size
    size = _number(size, "watermark.size", MIN_WATERMARK_SIZE, MAX_WATERMARK_SIZE)
    return Watermark(text=wm.text, position=wm.position, margin=int(margin), opacity=opacity, size=size)


def _check_text(text: str) -> None:
    if not text.strip():
        raise _error("watermark.text", "must not be blank")
    if len(text) > MAX_WATERMARK_TEXT:
        raise _error("watermark.text", f"has at most {MAX_WATERMARK_TEXT} characters")
    # One line of printable text: no control characters, no lone surrogates (not UTF-8)
    if any(unicodedata.category(c) in ("Cc", "Cs", "Zl", "Zp") for c in text):
        raise _error("watermark.text", "must be one line of printable characters")


def normalize_preview(raw: Any) -> PreviewOptions:
    """The preview options ``raw`` describes (None: the defaults)."""
    p: PreviewOptions = PreviewOptions() if raw is None else _converted(raw, PreviewOptions, "preview")
    clips = _number(p.clips, "preview.clips", MIN_PREVIEW_CLIPS, MAX_PREVIEW_CLIPS)
    width = _number(p.width, "preview.width", MIN_PREVIEW_WIDTH, MAX_PREVIEW_WIDTH)
    if clips != int(clips) or width != int(width):
        raise _error("preview.clips" if clips != int(clips) else "preview.width", "must be a whole number")
    if int(width) % 2:
        raise _error("preview.width", "must be even")
    seconds = _number(
        p.clip_seconds, "preview.clip_seconds", MIN_PREVIEW_CLIP_SECONDS, MAX_PREVIEW_CLIP_SECONDS
    )
    fps = _number(p.fps, "preview.fps", MIN_PREVIEW_FPS, MAX_PREVIEW_FPS)
    return PreviewOptions(clips=int(clips), clip_seconds=seconds, width=int(width), fps=fps)
