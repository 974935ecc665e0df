"""A video's dynamic range, read from ffprobe's colour fields: what decides whether a rendition keeps
HDR or is tone-mapped to SDR. Pure."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from fractions import Fraction
from typing import Any, Literal

from .events import ContentLight, MasteringDisplay, MediaInfo

DynamicRange = Literal["sdr", "pq", "hlg"]

# ffprobe's (and FFmpeg's -color_trc) names of the HDR transfer functions
PQ_TRANSFER = "smpte2084"
HLG_TRANSFER = "arib-std-b67"
BT2020_PRIMARIES = "bt2020"
BT2020_MATRIX = "bt2020nc"

# HEVC SEI units of ST 2086 (x265's master-display): chromaticity in 1/50000, luminance in 1/10000 cd/m2
CHROMATICITY_UNITS = 50000
LUMINANCE_UNITS = 10000

MASTERING_SIDE_DATA = "Mastering display metadata"
CONTENT_LIGHT_SIDE_DATA = "Content light level metadata"


def dynamic_range(info: MediaInfo) -> DynamicRange:
    """ "pq" (HDR10) or "hlg" by the video's transfer function; anything else, unknown included, is SDR
    (a source without colour tags is taken for BT.709, as players take it)."""
    if info.color_transfer == PQ_TRANSFER:
        return "pq"
    if info.color_transfer == HLG_TRANSFER:
        return "hlg"
    return "sdr"


def _ratio(value: Any) -> Fraction | None:
    if isinstance(value, bool):
        return None
    try:
        r = Fraction(value) if isinstance(value, int | str) else None
    except (ValueError, ZeroDivisionError):
        return None
    return r if r is not None and r >= 0 else None


def _units(entry: Mapping[str, Any], field: str, scale: int, limit: int) -> int | None:
    r = _ratio(entry.get(field))
    if r is None:
        return None
    n = round(r * scale)
    return n if 0 <= n <= limit else None


def mastering_display(entry: Mapping[str, Any]) -> MasteringDisplay | None:
    """ST 2086 metadata from one ffprobe side data entry (``red_x: "34000/50000"``…), None when a value is
    missing or out of range (every value fits the SEI's 16 and 32 bits)."""
    if entry.get("side_data_type") != MASTERING_SIDE_DATA:
        return None
    xy = {}
    for colour in ("red", "green", "blue", "white_point"):
        x = _units(entry, f"{colour}_x", CHROMATICITY_UNITS, CHROMATICITY_UNITS)
        y = _units(entry, f"{colour}_y", CHROMATICITY_UNITS, CHROMATICITY_UNITS)
        if x is None or y is None:
            return None
        xy[colour] = (x, y)
    high = _units(entry, "max_luminance", LUMINANCE_UNITS, 2**32 - 1)
    low = _units(entry, "min_luminance", LUMINANCE_UNITS, 2**32 - 1)
    if high is None or low is None or low > high:
        return None
    return MasteringDisplay(**xy, max_luminance=high, min_luminance=low)


def content_light(entry: Mapping[str, Any]) -> ContentLight | None:
    """CTA-861.3 content light level from one ffprobe side data entry, None when a value is missing or
    does not fit its 16 bits."""
    if entry.get("side_data_type") != CONTENT_LIGHT_SIDE_DATA:
        return None
    cll, fall = _ratio(entry.get("max_content")), _ratio(entry.get("max_average"))
    if cll is None or fall is None or cll.denominator != 1 or fall.denominator != 1:
        return None
    if cll > 0xFFFF or fall > 0xFFFF:
        return None
    return ContentLight(max_cll=int(cll), max_fall=int(fall))


def hdr_metadata(side_data: Iterable[Any]) -> tuple[MasteringDisplay | None, ContentLight | None]:
    """The mastering display and content light level among ffprobe side data entries (a stream's
    ``side_data_list``, or a frame's: HEVC carries them in SEI, which MP4 does not copy to a box)."""
    mastering: MasteringDisplay | None = None
    light: ContentLight | None = None
    for entry in side_data:
        if not isinstance(entry, Mapping):
            continue
        mastering = mastering or mastering_display(entry)
        light = light or content_light(entry)
    return mastering, light
