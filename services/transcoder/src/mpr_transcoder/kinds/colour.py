"""The colour of video outputs: an HDR source (PQ or HLG) stays HDR on the package rungs whose codec
carries it (HEVC, AV1: 10-bit, BT.2020, its transfer, its mastering metadata) and is tone-mapped to SDR
BT.709 8-bit on the others (H.264), as are its thumbnails, storyboards and posters. An SDR source is
left alone: no filter or option is added.

Tone mapping: zscale to linear light (100 cd/m2 nominal peak), Hable's filmic curve (it keeps detail in
both highlights and shadows, where Mobius clips highlights harder at these settings), no desaturation
(hue shifts less), back to BT.709 with zscale. Pure; no value here comes from a user string: colour
names are constants, and the mastering metadata are integers parsed from ffprobe's output."""

from __future__ import annotations

from mpr_common.colour import (
    BT2020_MATRIX,
    BT2020_PRIMARIES,
    CHROMATICITY_UNITS,
    HLG_TRANSFER,
    LUMINANCE_UNITS,
    PQ_TRANSFER,
    DynamicRange,
    dynamic_range,
)
from mpr_common.events import MasteringDisplay, MediaInfo
from mpr_common.presets import Rung

# Encoders whose rungs keep an HDR source HDR.
HDR_CODECS = frozenset({"libx265", "libsvtav1"})
SDR_PIX_FMT = "yuv420p"
HDR_PIX_FMT = "yuv420p10le"
TONEMAP = "hable"
_TRANSFER = {"pq": PQ_TRANSFER, "hlg": HLG_TRANSFER}


def rung_range(rung: Rung, info: MediaInfo) -> DynamicRange:
    """What the rung writes: the source's HDR on an HEVC or AV1 rung, SDR anywhere else."""
    source = dynamic_range(info)
    return source if source != "sdr" and rung.video_codec in HDR_CODECS else "sdr"


def tone_mapped(rung: Rung, info: MediaInfo) -> bool:
    """An HDR source's rung that writes SDR."""
    return dynamic_range(info) != "sdr" and rung_range(rung, info) == "sdr"


def pix_fmt(rung: Rung, info: MediaInfo) -> str:
    return HDR_PIX_FMT if rung_range(rung, info) != "sdr" else SDR_PIX_FMT


def tonemap_filter(info: MediaInfo) -> str:
    """HDR (the source's transfer; BT.2020 primaries and matrix, as HDR10 and HLG define them, whatever
    else a source is tagged with) to SDR BT.709 8-bit, limited range."""
    source = dynamic_range(info)
    if source == "sdr":
        raise ValueError("tone mapping needs an HDR source")
    return (
        f"zscale=tin={_TRANSFER[source]}:pin={BT2020_PRIMARIES}:min={BT2020_MATRIX}:t=linear:npl=100,"
        f"format=gbrpf32le,zscale=p=bt709,tonemap=tonemap={TONEMAP}:desat=0,"
        f"zscale=t=bt709:m=bt709:r=tv,format={SDR_PIX_FMT}"
    )


# The colour tags of a tone-mapped picture (VUI and colr box): SDR BT.709.
SDR_TAGS = ("-color_primaries", "bt709", "-color_trc", "bt709", "-colorspace", "bt709")


def to_sdr_filter(info: MediaInfo) -> str | None:
    """The filter an SDR picture (thumbnail, storyboard, poster) of the source needs: None for an SDR
    source (nothing added), the tone mapping for an HDR one."""
    return None if dynamic_range(info) == "sdr" else tonemap_filter(info)


def colour_args(rung: Rung, info: MediaInfo) -> list[str]:
    """The output's colour tags (VUI, and the colr box of its sample entry): BT.2020 with the source's
    transfer on an HDR rung, BT.709 on a tone-mapped rung; none for an SDR source."""
    written = rung_range(rung, info)
    if written != "sdr":
        trc = _TRANSFER[written]
        return ["-color_primaries", BT2020_PRIMARIES, "-color_trc", trc, "-colorspace", BT2020_MATRIX]
    if tone_mapped(rung, info):
        return list(SDR_TAGS)
    return []


def _xy(point: tuple[int, int], scale: float = 1.0) -> str:
    x, y = point
    return f"({x},{y})" if scale == 1.0 else f"({x / scale:.5f},{y / scale:.5f})"


def x265_master_display(m: MasteringDisplay) -> str:
    """x265's master-display (SEI units): G(x,y)B(x,y)R(x,y)WP(x,y)L(max,min)."""
    return (
        f"G{_xy(m.green)}B{_xy(m.blue)}R{_xy(m.red)}WP{_xy(m.white_point)}"
        f"L({m.max_luminance},{m.min_luminance})"
    )


def svtav1_master_display(m: MasteringDisplay) -> str:
    """SVT-AV1's mastering-display: the same fields as decimals (chromaticity, cd/m2)."""
    s = float(CHROMATICITY_UNITS)
    return (
        f"G{_xy(m.green, s)}B{_xy(m.blue, s)}R{_xy(m.red, s)}WP{_xy(m.white_point, s)}"
        f"L({m.max_luminance / LUMINANCE_UNITS:.4f},{m.min_luminance / LUMINANCE_UNITS:.4f})"
    )


def x265_hdr_params(rung: Rung, info: MediaInfo) -> list[str]:
    """x265 parameters of an HDR rung: HDR10 signalling for PQ, and the source's mastering display and
    content light level SEI when it has them."""
    written = rung_range(rung, info)
    if written == "sdr":
        return []
    params = ["hdr10=1"] if written == "pq" else []
    if info.mastering_display:
        params.append(f"master-display={x265_master_display(info.mastering_display)}")
    if info.content_light:
        params.append(f"max-cll={info.content_light.max_cll},{info.content_light.max_fall}")
    return params


def svtav1_hdr_params(rung: Rung, info: MediaInfo) -> list[str]:
    """SVT-AV1 parameters of an HDR rung: the source's mastering display and content light level (its
    metadata OBUs) when it has them."""
    if rung_range(rung, info) == "sdr":
        return []
    params = []
    if info.mastering_display:
        params.append(f"mastering-display={svtav1_master_display(info.mastering_display)}")
    if info.content_light:
        params.append(f"content-light={info.content_light.max_cll},{info.content_light.max_fall}")
    return params
