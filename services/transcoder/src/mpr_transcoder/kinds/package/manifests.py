"""A package's manifests, written from the description of its finished renditions: an HLS master
playlist over their media playlists and a DASH MPD over the very same init and media segments. Pure.

Both refer to the renditions' files by relative URIs: the manifests sit in the same folder. Audio tracks
are listed in the order given, the first the default; their labels come from the source's tags (anyone's
text), so they are made safe here again, whatever the caller did: :func:`hls_text`."""

from __future__ import annotations

import math
import re
import xml.etree.ElementTree as ET
from collections.abc import Iterable
from fractions import Fraction
from urllib.parse import quote

from mpr_common.audio_tracks import display_text, language_tag
from mpr_common.events import Rendition

AUDIO_GROUP = "aud"
SUBTITLE_GROUP = "subs"
# 90 kHz counts every common frame duration in whole ticks (1/24, 1/25, 1/30, 1/50, 1/60 s and their
# 1000/1001 variants), so video segment boundaries, which fall on frames, are exact.
VIDEO_TIMESCALE = 90000
DEFAULT_AUDIO_TIMESCALE = 48000
DASH_PROFILE = "urn:mpeg:dash:profile:isoff-live:2011"
_MPD_NS = "urn:mpeg:dash:schema:mpd:2011"


# --- HLS ------------------------------------------------------------------------------------------------


def _quoted(value: str) -> str:
    """An HLS quoted-string: it has no escape, so a double quote or a line break cannot be written."""
    if any(c in value for c in '"\r\n'):
        raise ValueError(f"cannot be written in an HLS attribute: {value!r}")
    return f'"{value}"'


def hls_text(value: str) -> str:
    """Text from outside (a stream's title) as the content of an HLS quoted-string, which has no escape:
    :func:`display_text` (no control character, no line break), a double quote becomes a single one."""
    return (display_text(value) or "").replace('"', "'")


def _labels(audios: list[Rendition]) -> list[str]:
    """Each audio rendition's NAME, unique in the group as HLS requires: its label (made safe), else its
    name; a label already taken gets its rendition's name after it (and a number, if that is taken too)."""
    names: list[str] = []
    for a in audios:
        label = hls_text(a.label) if a.label else ""
        if not label:
            label = a.name
        base, n = label, 1
        while label in names:
            label = f"{base} ({a.name})" if n == 1 else f"{base} ({a.name} {n})"
            n += 1
        names.append(label)
    return names


def _uri(file_name: str) -> str:
    return quote(file_name, safe="-._~!$&'()*+,;=:@")


def _csv(values: Iterable[str]) -> str:
    return ",".join(dict.fromkeys(v for v in values if v))


def _by_bandwidth(renditions: Iterable[Rendition]) -> list[Rendition]:
    return sorted(renditions, key=lambda r: (r.bandwidth, r.name))


def _audio_variant(a: Rendition) -> list[str]:
    """An audio rendition as a variant of its own (a package without video)."""
    attrs = [f"BANDWIDTH={a.bandwidth}", f"AVERAGE-BANDWIDTH={a.average_bandwidth}"]
    if a.codecs:
        attrs.append(f"CODECS={_quoted(a.codecs)}")
    return ["#EXT-X-STREAM-INF:" + ",".join(attrs), _uri(a.playlist)]


def _audio_media(a: Rendition, label: str, default: bool) -> str:
    """An audio rendition as a member of the audio group."""
    attrs = [
        "TYPE=AUDIO",
        f"GROUP-ID={_quoted(AUDIO_GROUP)}",
        f"NAME={_quoted(label)}",
    ]
    language = language_tag(a.language)
    if language:
        attrs.append(f"LANGUAGE={_quoted(language)}")
    attrs += [f"DEFAULT={'YES' if default else 'NO'}", "AUTOSELECT=YES"]
    if a.channels:
        attrs.append(f"CHANNELS={_quoted(str(a.channels))}")
    attrs.append(f"URI={_quoted(_uri(a.playlist))}")
    return "#EXT-X-MEDIA:" + ",".join(attrs)


def _subtitle_media(r: Rendition, label: str) -> str:
    """A subtitle rendition as a member of the subtitle group: its WebVTT media playlist."""
    attrs = ["TYPE=SUBTITLES", f"GROUP-ID={_quoted(SUBTITLE_GROUP)}", f"NAME={_quoted(label)}"]
    language = language_tag(r.language)
    if language:
        attrs.append(f"LANGUAGE={_quoted(language)}")
    attrs += [
        f"DEFAULT={'YES' if r.default else 'NO'}",
        "AUTOSELECT=YES",
        f"FORCED={'YES' if r.forced else 'NO'}",
        f"URI={_quoted(_uri(r.playlist))}",
    ]
    return "#EXT-X-MEDIA:" + ",".join(attrs)


def _video_variant(v: Rendition, audios: list[Rendition], ranges: bool = False) -> list[str]:
    """A video rendition as a variant naming the audio group, its bandwidth that of the group's largest
    audio rendition added to its own. ``ranges``: its VIDEO-RANGE is written (SDR when it has none)."""
    attrs = [
        f"BANDWIDTH={v.bandwidth + max((a.bandwidth for a in audios), default=0)}",
        f"AVERAGE-BANDWIDTH={v.average_bandwidth + max((a.average_bandwidth for a in audios), default=0)}",
    ]
    codecs = _csv([v.codecs, _csv(a.codecs for a in audios)])
    if codecs:
        attrs.append(f"CODECS={_quoted(codecs)}")
    if v.width and v.height:
        attrs.append(f"RESOLUTION={v.width}x{v.height}")
    if v.frame_rate:
        attrs.append(f"FRAME-RATE={v.frame_rate:.3f}")
    if ranges:
        attrs.append(f"VIDEO-RANGE={v.video_range or 'SDR'}")
    if audios:
        attrs.append(f"AUDIO={_quoted(AUDIO_GROUP)}")
    return ["#EXT-X-STREAM-INF:" + ",".join(attrs), _uri(v.playlist)]


def hls_master(renditions: list[Rendition]) -> str:
    """The master playlist: one audio group with the audio renditions (in the order given, the first the
    default; NAME its label, LANGUAGE its language), one variant per video rendition (ascending
    bandwidth) that names the group. A variant's BANDWIDTH and AVERAGE-BANDWIDTH add those of
    the group's largest audio rendition to its video's; CODECS lists both. Subtitle renditions (in the
    order given) form a subtitle group every variant names. Audio alone: the audio renditions are the
    variants. When a video rendition is HDR, every video variant says its VIDEO-RANGE (PQ, HLG or SDR: a
    player without HDR takes the SDR ones); an all-SDR package's master leaves it out (SDR is the
    default)."""
    videos = _by_bandwidth(r for r in renditions if r.type == "video")
    audios = [r for r in renditions if r.type == "audio"]
    if not videos and not audios:
        raise ValueError("a package needs at least one rendition")
    lines = ["#EXTM3U", "#EXT-X-VERSION:7", "#EXT-X-INDEPENDENT-SEGMENTS"]
    if not videos:
        for a in _by_bandwidth(audios):
            lines += _audio_variant(a)
    else:
        labels = _labels(audios)
        lines += [_audio_media(a, labels[i], default=i == 0) for i, a in enumerate(audios)]
        ranges = any(v.video_range for v in videos)
        texts = [r for r in renditions if r.type == "subtitles"]
        lines += [_subtitle_media(r, label) for r, label in zip(texts, _labels(texts), strict=True)]
        for v in videos:
            variant = _video_variant(v, audios, ranges)
            if texts:
                variant[0] += f",SUBTITLES={_quoted(SUBTITLE_GROUP)}"
            lines += variant
    return "\n".join(lines) + "\n"


# --- DASH -------------------------------------------------------------------------------------------------


def timeline(durations: list[float], timescale: int) -> list[tuple[int, int]]:
    """Segment (start, duration) in ``timescale`` ticks, each boundary rounded from the running total in
    seconds: rounding each duration alone would let the errors add up (drift) over a long rendition."""
    bounds = [0]
    total = 0.0
    for d in durations:
        total += d
        bounds.append(round(total * timescale))
    return [(bounds[i], bounds[i + 1] - bounds[i]) for i in range(len(durations))]


def segment_timeline(durations: list[float], timescale: int) -> ET.Element:
    """A SegmentTimeline: runs of equal durations become one S with a repeat count."""
    element = ET.Element("SegmentTimeline")
    runs: list[list[int]] = []  # [start, duration, repeats]
    for start, duration in timeline(durations, timescale):
        if runs and runs[-1][1] == duration:
            runs[-1][2] += 1
        else:
            runs.append([start, duration, 0])
    for i, (start, duration, repeats) in enumerate(runs):
        s = ET.SubElement(element, "S")
        if i == 0:
            s.set("t", str(start))
        s.set("d", str(duration))
        if repeats:
            s.set("r", str(repeats))
    return element


def number_template(media_pattern: str) -> str:
    """A printf segment pattern as a DASH template: ``720p_%05d.m4s`` -> ``720p_$Number%05d$.m4s``."""
    parts = re.split(r"%(0\d+)?d", media_pattern.replace("$", "$$"))
    if len(parts) != 3:  # the text before, the width (or None), the text after
        raise ValueError(f"not a numbered segment pattern: {media_pattern!r}")
    before, width, after = parts
    return f"{before}$Number{'%' + width + 'd' if width else ''}${after}"


def frame_rate_attr(fps: float) -> str:
    """DASH frameRate: an integer, or a fraction for the NTSC rates (30000/1001)."""
    rate = Fraction(fps).limit_denominator(1001)
    return str(rate.numerator) if rate.denominator == 1 else f"{rate.numerator}/{rate.denominator}"


def _duration(seconds: float) -> str:
    return f"PT{seconds:.3f}S"


def _family(r: Rendition) -> str:
    return r.codecs.split(".", 1)[0] if r.codecs else ""


# ISO/IEC 23091-2 code points of HDR video, as DASH-IF IOP signals them (urn:mpeg:mpegB:cicp)
_CICP = "urn:mpeg:mpegB:cicp:"
_BT2020 = "9"  # colour primaries and (non-constant luminance) matrix coefficients
_TRANSFER_CODE = {"PQ": "16", "HLG": "18"}


def _colour_properties(aset: ET.Element, video_range: str) -> None:
    """An HDR set's colour: PQ as an EssentialProperty (a player that cannot show it must skip the set),
    HLG as a SupplementalProperty (it is watchable as SDR); BT.2020 primaries and matrix beside it."""
    transfer = "EssentialProperty" if video_range == "PQ" else "SupplementalProperty"
    for element, name, value in (
        ("EssentialProperty", "ColourPrimaries", _BT2020),
        (transfer, "TransferCharacteristics", _TRANSFER_CODE[video_range]),
        ("EssentialProperty", "MatrixCoefficients", _BT2020),
    ):
        ET.SubElement(aset, element, schemeIdUri=_CICP + name, value=value)


def _representation(parent: ET.Element, r: Rendition, timescale: int) -> ET.Element:
    rep = ET.SubElement(parent, "Representation", id=r.name, bandwidth=str(r.bandwidth))
    if r.codecs:
        rep.set("codecs", r.codecs)
    template = ET.SubElement(
        rep,
        "SegmentTemplate",
        timescale=str(timescale),
        initialization=r.init.replace("$", "$$"),
        media=number_template(r.media_pattern),
        startNumber=str(r.start_number),
    )
    template.append(segment_timeline(r.segments, timescale))
    return rep


def _adaptation_set(period: ET.Element, set_id: int, content: str) -> ET.Element:
    return ET.SubElement(
        period,
        "AdaptationSet",
        id=str(set_id),
        contentType=content,
        mimeType=f"{content}/mp4",
        segmentAlignment="true",
        startWithSAP="1",
    )


def _video_set(period: ET.Element, set_id: int, reps: list[Rendition]) -> None:
    """One video codec family's adaptation set (of one dynamic range)."""
    aset = _adaptation_set(period, set_id, "video")
    if reps[0].video_range:  # descriptors come before the representations (schema order)
        _colour_properties(aset, reps[0].video_range)
    widths = [r.width for r in reps if r.width]
    heights = [r.height for r in reps if r.height]
    if widths and heights:
        aset.set("maxWidth", str(max(widths)))
        aset.set("maxHeight", str(max(heights)))
    for r in reps:
        rep = _representation(aset, r, VIDEO_TIMESCALE)
        if r.width and r.height:
            rep.set("width", str(r.width))
            rep.set("height", str(r.height))
            rep.set("sar", "1:1")
        if r.frame_rate:
            rep.set("frameRate", frame_rate_attr(r.frame_rate))


def _audio_set(period: ET.Element, set_id: int, audios: list[Rendition], label: str, main: bool) -> None:
    """One audio track's adaptation set: its language (``lang``), its Label, its Role (``main`` for the
    default track, ``alternate`` for the others), before its representations as the schema orders them."""
    aset = _adaptation_set(period, set_id, "audio")
    language = language_tag(audios[0].language)
    if language:
        aset.set("lang", language)
    ET.SubElement(aset, "Label").text = label
    ET.SubElement(aset, "Role", schemeIdUri="urn:mpeg:dash:role:2011", value="main" if main else "alternate")
    for r in audios:
        rate = r.sample_rate or DEFAULT_AUDIO_TIMESCALE
        rep = _representation(aset, r, rate)
        rep.set("audioSamplingRate", str(rate))
        if r.channels:
            # the channel configuration element goes before the segment template (schema order)
            channels = ET.Element(
                "AudioChannelConfiguration",
                schemeIdUri="urn:mpeg:dash:23003:3:audio_channel_configuration:2011",
                value=str(r.channels),
            )
            rep.insert(0, channels)


def _text_set(period: ET.Element, set_id: int, r: Rendition, label: str) -> None:
    """One subtitle track's adaptation set: the whole track in one WebVTT file, with its language,
    Label and Role (``subtitle``, or ``forced-subtitle``)."""
    aset = ET.SubElement(period, "AdaptationSet", id=str(set_id), contentType="text", mimeType="text/vtt")
    language = language_tag(r.language)
    if language:
        aset.set("lang", language)
    ET.SubElement(aset, "Label").text = label
    role = "forced-subtitle" if r.forced else "subtitle"
    ET.SubElement(aset, "Role", schemeIdUri="urn:mpeg:dash:role:2011", value=role)
    rep = ET.SubElement(aset, "Representation", id=r.name, bandwidth=str(r.bandwidth))
    ET.SubElement(rep, "BaseURL").text = _uri(r.text_file or "")


def dash_mpd(renditions: list[Rendition]) -> str:
    """A static (VOD) MPD, ISO BMFF live profile: one adaptation set per video codec family (and dynamic
    range: an HDR set carries its colour properties), their
    segments aligned (every rendition has a key frame at the same times and segments cut on them), and one
    per audio track (in the order given, the first the main one), and one per subtitle track (its whole
    WebVTT file); each segmented representation addresses its segments by number along a timeline of
    their durations."""
    if not renditions:
        raise ValueError("a package needs at least one rendition")
    total = max(sum(r.segments) for r in renditions)
    longest = max((d for r in renditions for d in r.segments), default=0.0)
    mpd = ET.Element(
        "MPD",
        xmlns=_MPD_NS,
        type="static",
        profiles=DASH_PROFILE,
        mediaPresentationDuration=_duration(total),
        minBufferTime=_duration(float(math.ceil(longest)) or 1.0),
    )
    period = ET.SubElement(mpd, "Period", id="0", start="PT0S")
    families: dict[tuple[str, str], list[Rendition]] = {}
    for r in _by_bandwidth(r for r in renditions if r.type == "video"):
        families.setdefault((_family(r), r.video_range or ""), []).append(r)
    # H.264 first: the set every player decodes, where a player that takes the first one starts
    ordered = sorted(families.items(), key=lambda item: (item[0][0] != "avc1", item[0]))
    for set_id, (_, reps) in enumerate(ordered):
        _video_set(period, set_id, reps)
    audios = [r for r in renditions if r.type == "audio"]
    for i, (audio, label) in enumerate(zip(audios, _labels(audios), strict=True)):
        _audio_set(period, len(ordered) + i, [audio], label, main=i == 0)
    texts = [r for r in renditions if r.type == "subtitles" and r.text_file]
    for i, (text, label) in enumerate(zip(texts, _labels(texts), strict=True)):
        _text_set(period, len(ordered) + len(audios) + i, text, label)
    ET.indent(mpd)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(mpd, encoding="unicode") + "\n"
