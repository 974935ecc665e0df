"""CMAF renditions of an adaptive package: the FFmpeg command of each rendition, the description of a
finished one (what the manifests are written from), and the one-command ladder used as the benchmark's
ceiling.

Every rendition is a fragmented-MP4 HLS media playlist ``<name>.m3u8`` with its init segment
``<name>_init.mp4`` and media segments ``<name>_00000.m4s``…, all in one folder. The DASH manifest
addresses the very same files, so their numbering must be consecutive and their key frames aligned:
every video rendition gets a key frame (an IDR, closed GOP) at exactly each multiple of
``preset.gop_seconds`` and never anywhere else, and FFmpeg's HLS muxer cuts segments at the first key
frame at or after each multiple of ``hls_segment_seconds``, so segment boundaries coincide too.

Pure argument builders; :func:`describe_rendition` reads only files the job wrote itself. Safety: the
source comes in ``input_args`` built by the caller with ``ffmpeg.argv``'s protocol and format whitelists; no option
value here comes from a user string (names and rates come from the preset table).
"""

from __future__ import annotations

import math
import re
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

from mpr_common.events import ChunkSpan, MediaInfo, Rendition
from mpr_common.presets import AUDIO_RENDITION, Preset, Rung

from ...ffmpeg.argv import GLOBAL_ARGS, local_input
from ...ffmpeg.filtergraph import WatermarkSource, watermark_inputs, watermark_outputs
from ..colour import (
    SDR_PIX_FMT,
    colour_args,
    pix_fmt,
    svtav1_hdr_params,
    tone_mapped,
    tonemap_filter,
    x265_hdr_params,
)
from ..ladder import ladder_rungs

AUDIO_SAMPLE_RATE = 48000
AUDIO_CHANNELS = 2


# --- file names -------------------------------------------------------------------------------------


def playlist_name(name: str) -> str:
    return f"{name}.m3u8"


def init_name(name: str) -> str:
    return f"{name}_init.mp4"


def chunk_playlist_name(name: str, index: int) -> str:
    """The media playlist one chunk of a chunked rendition writes (its segments only)."""
    return f"{name}.c{index:04d}.m3u8"


def segment_pattern(name: str) -> str:
    """printf pattern of the media segments (FFmpeg's ``-hls_segment_filename``, numbered from 0)."""
    return f"{name}_%05d.m4s"


# --- which rungs ------------------------------------------------------------------------------------


# --- per-rung encoder settings (one definition for the per-rendition commands and the raw ladder) ---------


def _gop_seconds(preset: Preset) -> float:
    if not preset.gop_seconds or not preset.hls_segment_seconds:
        raise ValueError(f"preset {preset.name!r} is not an adaptive ladder (no GOP or segment length)")
    return preset.gop_seconds


def gop_frames(preset: Preset, info: MediaInfo) -> int | None:
    """Frames between key frames at the source's frame rate, rounded up: forced key frames fall on the
    first frame at or after each multiple of the GOP duration, so they are at most this many frames apart
    and the encoder's own maximum interval never adds one before them. None when the rate is unknown."""
    if not info.fps:
        return None
    return max(1, math.ceil(_gop_seconds(preset) * info.fps - 1e-3))


def key_frame_interval_on_grid(preset: Preset, info: MediaInfo) -> bool:
    """Whether key frames every :func:`gop_frames` frames, counted from any segment boundary, fall
    exactly on every multiple of ``gop_seconds`` and nowhere else: what an encoder that places key frames
    by a fixed interval alone (libsvtav1 in FFmpeg 5.1) needs for its chunks to keep the title's grid.
    True when a GOP is a whole number of frames at the source's rate (24, 25, 30, 50, 60 fps; not
    30000/1001, whose 2 s GOP is 59.94 frames) and a segment a whole number of GOPs (a chunk starts on
    a segment boundary). False when the rate is unknown."""
    gop = _gop_seconds(preset)
    if not info.fps or info.fps <= 0:
        return False
    frames = gop * info.fps
    gops = (preset.hls_segment_seconds or 0) / gop
    return abs(frames - round(frames)) < 1e-6 and abs(gops - round(gops)) < 1e-9


def video_filter(rung: Rung, info: MediaInfo | None = None) -> str:
    """Scale to the rung's height with square pixels and even dimensions; never upscale. An HDR source
    (``info``) stays 10-bit on a rung that keeps HDR and is tone-mapped after scaling on one that does
    not (see :mod:`.colour`); an SDR source gets 8-bit 4:2:0 only."""
    h = f"min({rung.height},ih)"
    scale = f"scale=w='2*round({h}*dar/2)':h='2*trunc({h}/2)',setsar=1"
    if info is not None and tone_mapped(rung, info):
        return f"{scale},{tonemap_filter(info)}"
    return f"{scale},format={pix_fmt(rung, info) if info is not None else SDR_PIX_FMT}"


def _capped_crf(rung: Rung) -> list[str]:
    """The rung's encoder at its preset, its CRF capped by the VBV maximum rate."""
    return [
        *("-c:v", rung.video_codec, "-preset", rung.encoder_preset, "-crf", str(rung.crf)),
        *("-maxrate", rung.max_rate, "-bufsize", rung.buf_size),
    ]


def video_encoder_args(preset: Preset, rung: Rung, info: MediaInfo) -> list[str]:
    """Capped CRF (quality-driven, bounded by the VBV maximum rate) with closed GOPs whose IDR frames fall
    exactly on every multiple of ``gop_seconds``: forced key frames, no scene-cut key frames."""
    gop = _gop_seconds(preset)
    frames = gop_frames(preset, info)
    args = [
        *_capped_crf(rung),
        # forced key frames as IDR frames, whatever the encoder's GOP settings make of an I frame:
        # decoding (and a player's switch of rendition) starts anew at each segment
        "-forced-idr",
        "1",
        "-force_key_frames",
        f"expr:gte(t,n_forced*{gop:g})",
    ]
    if rung.video_codec == "libsvtav1":
        return _svtav1_args(rung, info, frames)
    if rung.video_codec == "libx264":
        args += ["-profile:v", "high", "-sc_threshold", "0"]
        if frames:
            args += ["-g", str(frames), "-keyint_min", str(frames)]
    elif rung.video_codec == "libx265":
        params = ["scenecut=0", "open-gop=0", "log-level=error"]
        if frames:
            params += [f"keyint={frames}", f"min-keyint={frames}"]
        params += x265_hdr_params(rung, info)
        # hvc1: parameter sets only in the sample entry, the tag Apple's players require
        args += ["-x265-params", ":".join(params), "-tag:v", "hvc1"]
    else:
        raise ValueError(f"rung {rung.name!r}: unsupported video codec {rung.video_codec!r}")
    return args + colour_args(rung, info)


def _svtav1_args(rung: Rung, info: MediaInfo, frames: int | None) -> list[str]:
    """SVT-AV1, capped CRF, closed GOPs (key frames, ``irefresh-type=2``) at a fixed interval: FFmpeg
    5.1's libsvtav1 ignores forced key frames, so the interval alone places them, on the multiples of
    ``gop_seconds`` when the frame rate makes a whole number of frames per GOP (24, 25, 30, 50, 60 fps;
    :func:`key_frame_interval_on_grid`: a chunk of such a rung starting on a segment boundary has its key
    frames where the whole rung has them, so it is chunked like any rung). At 30000/1001 fps every GOP
    is 60 frames where the forced key frames of the other rungs make one 59 now and then (from about
    the 17th): AV1 segments then run a frame longer than H.264's. The DASH
    manifest gives AV1 an adaptation set of its own, and players switch within one codec; such a rung is
    encoded whole, as a chunk's interval would restart at its own first frame."""
    args = _capped_crf(rung)
    if frames:
        args += ["-g", str(frames)]
    params = ["irefresh-type=2", *svtav1_hdr_params(rung, info)]
    return args + ["-svtav1-params", ":".join(params), *colour_args(rung, info)]


def audio_encoder_args(preset: Preset, loudnorm_filter: str | None = None) -> list[str]:
    args = ["-af", loudnorm_filter] if loudnorm_filter else []
    return args + [
        "-c:a",
        "aac",
        "-b:a",
        preset.audio_bitrate or "128k",
        "-ar",
        str(AUDIO_SAMPLE_RATE),
        "-ac",
        str(AUDIO_CHANNELS),
    ]


def hls_output_args(
    preset: Preset, name: str, out_dir: Path, *, start_number: int = 0, playlist: str | None = None
) -> list[str]:
    """One CMAF HLS rendition: fMP4 segments of ``hls_segment_seconds``, VOD playlist, init segment
    beside it (FFmpeg writes it in the segments' folder). A chunk numbers its segments from
    ``start_number`` and lists them in a ``playlist`` of its own.

    Timestamps are not shifted to make decoding times non-negative: each rendition is a file of its own,
    and such a shift would move it by its own encoder's delay (B-frames, AAC priming). Unshifted, the
    first frame of every rendition is presented at the source's time 0 (the delay goes to the init
    segment's edit list), so key frames share their times across renditions, and sound and picture keep
    the source's sync for players that honour edit lists."""
    _gop_seconds(preset)
    return [
        "-avoid_negative_ts",
        "disabled",
        "-f",
        "hls",
        "-hls_segment_type",
        "fmp4",
        "-hls_time",
        str(preset.hls_segment_seconds),
        "-start_number",
        str(start_number),
        "-hls_playlist_type",
        "vod",
        "-hls_list_size",
        "0",
        "-hls_flags",
        "independent_segments",
        "-hls_fmp4_init_filename",
        init_name(name),
        "-hls_segment_filename",
        str(out_dir / segment_pattern(name)),
        str(out_dir / (playlist or playlist_name(name))),
    ]


# --- commands ---------------------------------------------------------------------------------------


def rendition_args(
    input_args: list[str],
    preset: Preset,
    rung: Rung | None,
    info: MediaInfo,
    out_dir: Path,
    *,
    loudnorm_filter: str | None = None,
    watermark: WatermarkSource | None = None,
    audio_name: str = AUDIO_RENDITION,
    audio_index: int = 0,
) -> list[str]:
    """The FFmpeg argv of one rendition: ``rung`` None is an audio rendition, ``audio_name``, of the
    source's audio stream ``audio_index`` (counting audio streams only).

    ``input_args`` are the input's options ending with ``-i URL`` (whitelists, timeouts, bounds; without
    the program name). The result starts with ``ffmpeg`` and reports progress on stdout. A video rung's
    ``watermark`` is drawn over the picture scaled to the rung."""
    if len(input_args) < 2 or input_args[-2] != "-i":
        raise ValueError("input_args must end with '-i', URL")
    args = [*GLOBAL_ARGS, *input_args]
    if rung is None:
        if info.audio_codec is None:
            raise ValueError("the source has no audio stream for the audio rendition")
        args += ["-map", f"0:a:{audio_index:d}", "-vn", "-sn", "-dn"]
        args += audio_encoder_args(preset, loudnorm_filter)
        return args + hls_output_args(preset, audio_name, out_dir)
    return (
        args
        + (watermark_inputs(watermark) if watermark else [])
        + _video_args(preset, rung, info, video_filter(rung, info), watermark)
        + hls_output_args(preset, rung.name, out_dir)
    )


def _video_args(
    preset: Preset, rung: Rung, info: MediaInfo, filters: str, watermark: WatermarkSource | None
) -> list[str]:
    if info.video_codec is None:
        raise ValueError("the source has no video stream to encode")
    if watermark is None:
        args = ["-map", "0:v:0", "-an", "-sn", "-dn", "-filter:v", filters]
    else:  # the rung's filters end in its pixel format already: back to it after the mark
        tail = f"format={pix_fmt(rung, info)}"
        args = [*watermark_outputs(filters, watermark, tail=tail), "-an", "-sn", "-dn"]
    return args + video_encoder_args(preset, rung, info)


def chunk_rendition_args(
    input_args: list[str],
    preset: Preset,
    rung: Rung,
    info: MediaInfo,
    out_dir: Path,
    chunk: ChunkSpan,
    watermark: WatermarkSource | None = None,
) -> list[str]:
    """The FFmpeg argv of one chunk of a video rung: the frames of the source's ``[chunk.start,
    chunk.end)`` (``input_args`` seek there and stop there, see ``argv.input_args``), encoded as
    :func:`rendition_args` encodes the whole rung, segments numbered from ``chunk.first_segment`` so that
    the chunks of a rung share one folder, listed in the chunk's own playlist
    (:func:`chunk_playlist_name`).

    Its timestamps start at 0, as the first chunk's do: the first frame is moved to exactly 0 before the
    encoder (``setpts``), whatever fraction of a frame separates it from ``chunk.start`` (30000/1001 fps
    frames are not on whole seconds), so every chunk's init segment, edit list included, is the first
    chunk's. The segments get their place in the title afterwards (``fragments.shift_fragments``). A
    ``watermark`` is drawn as on the whole rung: every chunk's picture is marked alike."""
    if len(input_args) < 2 or input_args[-2] != "-i":
        raise ValueError("input_args must end with '-i', URL")
    filters = f"setpts=PTS-STARTPTS,{video_filter(rung, info)}"
    playlist = chunk_playlist_name(rung.name, chunk.index)
    out = hls_output_args(preset, rung.name, out_dir, start_number=chunk.first_segment, playlist=playlist)
    marks = watermark_inputs(watermark) if watermark else []
    return [*GLOBAL_ARGS, *input_args, *marks, *_video_args(preset, rung, info, filters, watermark), *out]


def ladder_command(input_path: Path, preset: Preset, info: MediaInfo, out_dir: Path) -> list[str]:
    """One FFmpeg command that encodes the whole ladder (the rungs of :func:`ladder_rungs` and the audio)
    from a local file: decoded once, split and scaled in one filter graph, each rung with the very encoder
    and muxer options of its rendition command. What a package's wall time is compared with."""
    rungs = ladder_rungs(preset, info)
    if not rungs and info.audio_codec is None:
        raise ValueError("the source has no audio or video stream")
    args = [*GLOBAL_ARGS, *local_input(input_path)]
    if rungs:
        labels = [f"v{i}" for i in range(len(rungs))]
        graph = [f"[0:v:0]split={len(rungs)}" + "".join(f"[s{i}]" for i in range(len(rungs)))]
        graph += [f"[s{i}]{video_filter(r, info)}[{labels[i]}]" for i, r in enumerate(rungs)]
        args += ["-filter_complex", ";".join(graph)]
        for label, rung in zip(labels, rungs, strict=True):
            args += ["-map", f"[{label}]", *video_encoder_args(preset, rung, info)]
            args += hls_output_args(preset, rung.name, out_dir)
    if info.audio_codec is not None:
        args += ["-map", "0:a:0", *audio_encoder_args(preset)]
        args += hls_output_args(preset, AUDIO_RENDITION, out_dir)
    return args


# --- a finished rendition -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class MediaPlaylist:
    target_duration: float
    init: str | None
    segments: list[tuple[str, float]]  # (URI, duration in seconds)


_ATTR_URI = re.compile(r'URI="([^"]*)"')


def parse_media_playlist(text: str) -> MediaPlaylist:
    """The parts of an HLS media playlist a package needs (as FFmpeg's HLS muxer writes them)."""
    target = 0.0
    init: str | None = None
    segments: list[tuple[str, float]] = []
    pending: float | None = None
    lines = [line.strip() for line in text.splitlines()]
    if not lines or lines[0] != "#EXTM3U":
        raise ValueError("not an HLS playlist (no #EXTM3U)")
    for line in lines[1:]:
        if not line:
            continue
        tag, _, value = line.partition(":")
        if tag == "#EXT-X-TARGETDURATION":
            target = float(value)
        elif tag == "#EXT-X-MAP":
            m = _ATTR_URI.search(value)
            init = m.group(1) if m else None
        elif tag == "#EXTINF":
            pending = float(value.split(",", 1)[0])
        elif not line.startswith("#"):
            if pending is None:
                raise ValueError(f"segment {line!r} has no #EXTINF")
            segments.append((line, pending))
            pending = None
    return MediaPlaylist(target, init, segments)


def peak_bandwidth(sizes: list[int], durations: list[float], target_duration: float) -> int:
    """HLS's peak segment bit rate (RFC 8216bis 4.4.6.2): the largest bit rate of any run of consecutive
    segments lasting 0.5 to 1.5 target durations, so that a short last segment does not count as a peak.
    The whole rendition's rate when no run qualifies."""
    lo, hi = 0.5 * target_duration, 1.5 * target_duration
    best = 0.0
    for i in range(len(sizes)):
        bits = 0
        seconds = 0.0
        for j in range(i, len(sizes)):
            bits += 8 * sizes[j]
            seconds += durations[j]
            if seconds > hi:
                break
            if seconds >= lo:
                best = max(best, bits / seconds)
    if best == 0.0:
        total = sum(durations)
        best = 8 * sum(sizes) / total if total > 0 else 0.0
    return math.ceil(best)


def describe_rendition(
    out_dir: Path, name: str, rung: Rung | None, *, playlist: str | None = None
) -> Rendition:
    """What the manifests need of a rendition FFmpeg finished in ``out_dir`` (``rung`` None: the audio),
    read from its media playlist (a chunk's: ``playlist``).

    Segment durations and numbering come from its media playlist, bit rates from the segments' sizes,
    the RFC 6381 codec string, dimensions and audio format from the init segment's sample entry, the frame
    rate from the first media segment's samples. The segments must be numbered consecutively from the
    playlist's first one: the DASH manifest addresses them by number."""
    pl = parse_media_playlist((out_dir / (playlist or playlist_name(name))).read_text())
    if not pl.segments:
        raise ValueError(f"rendition {name!r}: its playlist lists no segment")
    if pl.init != init_name(name):
        raise ValueError(f"rendition {name!r}: unexpected init segment {pl.init!r}")
    pattern = segment_pattern(name)
    numbers = [_segment_number(uri, name) for uri, _ in pl.segments]
    start = numbers[0]
    if numbers != list(range(start, start + len(numbers))):
        raise ValueError(f"rendition {name!r}: segments are not numbered consecutively")
    durations = [d for _, d in pl.segments]
    sizes = [(out_dir / uri).stat().st_size for uri, _ in pl.segments]
    total = sum(durations)
    track = read_init_segment((out_dir / init_name(name)).read_bytes())
    rendition = Rendition(
        name=name,
        type="audio" if rung is None else "video",
        playlist=playlist_name(name),
        init=init_name(name),
        media_pattern=pattern,
        segments=durations,
        start_number=start,
        bandwidth=peak_bandwidth(sizes, durations, pl.target_duration),
        average_bandwidth=math.ceil(8 * sum(sizes) / total) if total > 0 else 0,
        codecs=track.codecs,
    )
    if rung is None:
        rendition.sample_rate = track.sample_rate
        rendition.channels = track.channels
    else:
        rendition.width = track.width
        rendition.height = track.height
        rendition.video_range = VIDEO_RANGES.get(track.transfer or 0)
        count, ticks = fragment_samples((out_dir / pl.segments[0][0]).read_bytes(), track)
        if count and ticks and track.timescale:
            rendition.frame_rate = float(Fraction(count * track.timescale, ticks))
    return rendition


def _segment_number(uri: str, name: str) -> int:
    m = re.fullmatch(re.escape(name) + r"_(\d{5,})\.m4s", uri)
    if not m:
        raise ValueError(f"rendition {name!r}: unexpected segment name {uri!r}")
    return int(m.group(1))


# --- ISO BMFF (MP4) boxes: just what the codec string and frame rate need ------------------------------


@dataclass(slots=True)
class TrackInfo:
    """The first track of an init segment."""

    codecs: str = ""
    timescale: int = 0
    width: int | None = None
    height: int | None = None
    sample_rate: int | None = None
    channels: int | None = None
    default_sample_duration: int = 0  # trex: what a fragment's samples last when they do not say
    transfer: int | None = None  # the colr box's transfer characteristics (ISO/IEC 23091-2), if any


def iter_boxes(
    data: bytes | bytearray, start: int = 0, end: int | None = None
) -> Iterator[tuple[str, int, int]]:
    """(type, payload start, payload end) of the boxes in ``data[start:end]``."""
    end = len(data) if end is None else end
    pos = start
    while pos + 8 <= end:
        size, kind = struct.unpack_from(">I4s", data, pos)
        header = 8
        if size == 1:
            if pos + 16 > end:
                break
            (size,) = struct.unpack_from(">Q", data, pos + 8)
            header = 16
        elif size == 0:
            size = end - pos
        if size < header or pos + size > end:
            raise ValueError(f"truncated MP4 box {kind!r}")
        yield kind.decode("latin-1"), pos + header, pos + size
        pos += size


def _child(data: bytes, start: int, end: int, *path: str) -> tuple[int, int] | None:
    """Payload bounds of the first box along ``path`` under ``data[start:end]``."""
    for kind, s, e in iter_boxes(data, start, end):
        if kind == path[0]:
            return (s, e) if len(path) == 1 else _child(data, s, e, *path[1:])
    return None


def _reverse_bits32(x: int) -> int:
    return int(f"{x:032b}"[::-1], 2)


def avc_codec_string(avcc: bytes, fourcc: str = "avc1") -> str:
    """RFC 6381: avc1.PPCCLL from the AVCDecoderConfigurationRecord (profile, constraint flags, level)."""
    return f"{fourcc}.{avcc[1]:02x}{avcc[2]:02x}{avcc[3]:02x}"


def hevc_codec_string(hvcc: bytes, fourcc: str = "hvc1") -> str:
    """ISO/IEC 14496-15 E.3: hvc1.<space><profile>.<compatibility, bit-reversed hex>.<tier><level>
    .<constraint bytes, trailing zero bytes left out>."""
    space = "" if hvcc[1] >> 6 == 0 else "ABC"[(hvcc[1] >> 6) - 1]
    tier = "H" if hvcc[1] & 0x20 else "L"
    profile = hvcc[1] & 0x1F
    (compat,) = struct.unpack_from(">I", hvcc, 2)
    constraints = list(hvcc[6:12])
    while constraints and constraints[-1] == 0:
        constraints.pop()
    parts = [fourcc, f"{space}{profile}", f"{_reverse_bits32(compat):X}", f"{tier}{hvcc[12]}"]
    return ".".join(parts + [f"{b:02X}" for b in constraints])


def av1_codec_string(av1c: bytes) -> str:
    """AV1 codecs parameter (AV1 ISOBMFF binding, Codecs Parameter String): av01.<profile>.<level><tier>
    .<bit depth> from an AV1CodecConfigurationRecord."""
    if len(av1c) < 3 or av1c[0] != 0x81:
        raise ValueError("not an AV1CodecConfigurationRecord (marker and version 1)")
    profile, level = av1c[1] >> 5, av1c[1] & 0x1F
    tier = "H" if av1c[2] & 0x80 else "M"
    depth = (12 if av1c[2] & 0x20 else 10) if av1c[2] & 0x40 else 8
    return f"av01.{profile}.{level:02d}{tier}.{depth:02d}"


# ISO/IEC 23091-2 transfer characteristics of HDR, and the HLS VIDEO-RANGE they make
VIDEO_RANGES = {16: "PQ", 18: "HLG"}


def _colr_transfer(data: bytes, start: int, end: int) -> int | None:
    """The transfer characteristics of a sample entry's colr box (nclx), None without one."""
    box = _child(data, start, end, "colr")
    if box is None or box[1] - box[0] < 10 or data[box[0] : box[0] + 4] not in (b"nclx", b"nclc"):
        return None
    return int(struct.unpack_from(">H", data, box[0] + 6)[0])


def _descriptor(data: bytes, pos: int) -> tuple[int, int, int]:
    """(tag, payload start, payload end) of an MPEG-4 descriptor (ISO/IEC 14496-1) at ``pos``."""
    tag = data[pos]
    pos += 1
    size = 0
    for _ in range(4):
        b = data[pos]
        pos += 1
        size = (size << 7) | (b & 0x7F)
        if not b & 0x80:
            break
    return tag, pos, pos + size


def mp4a_codec_string(esds: bytes) -> str:
    """RFC 6381: mp4a.<object type indication, hex>.<audio object type> from an esds box's payload."""
    tag, pos, end = _descriptor(esds, 4)  # after the full box's version and flags
    if tag != 0x03:
        raise ValueError("esds holds no ES descriptor")
    flags = esds[pos + 2]
    pos += 3
    if flags & 0x80:
        pos += 2
    if flags & 0x40:
        pos += 1 + esds[pos]
    if flags & 0x20:
        pos += 2
    tag, pos, end = _descriptor(esds, pos)
    if tag != 0x04:
        raise ValueError("esds holds no decoder configuration")
    oti = esds[pos]
    if pos + 13 >= end:
        return f"mp4a.{oti:02x}"
    tag, pos, _ = _descriptor(esds, pos + 13)
    if tag != 0x05:
        return f"mp4a.{oti:02x}"
    aot = esds[pos] >> 3
    if aot == 31:
        aot = 32 + (((esds[pos] & 0x07) << 3) | (esds[pos + 1] >> 5))
    return f"mp4a.{oti:02x}.{aot}"


_VISUAL_ENTRY = 78  # bytes of a VisualSampleEntry before its child boxes
_AUDIO_ENTRY = 28  # of an AudioSampleEntry (version 0)


def _read_visual_entry(data: bytes, fourcc: str, s: int, e: int, info: TrackInfo) -> None:
    """Picture size, codec string and colr transfer of a video sample entry (payload ``data[s:e]``)."""
    info.width, info.height = struct.unpack_from(">HH", data, s + 24)
    config = {"av01": "av1C", "avc1": "avcC", "avc3": "avcC"}.get(fourcc, "hvcC")
    box = _child(data, s + _VISUAL_ENTRY, e, config)
    if box is None:
        raise ValueError(f"{fourcc} sample entry has no {config}")
    record = data[box[0] : box[1]]
    if config == "av1C":
        info.codecs = av1_codec_string(record)
    elif config == "avcC":
        info.codecs = avc_codec_string(record, fourcc)
    else:
        info.codecs = hevc_codec_string(record, fourcc)
    info.transfer = _colr_transfer(data, s + _VISUAL_ENTRY, e)


def read_init_segment(data: bytes) -> TrackInfo:
    """The first track's codec string, timescale, picture size or audio format, and fragment defaults."""
    info = TrackInfo()
    moov = _child(data, 0, len(data), "moov")
    if moov is None:
        raise ValueError("init segment has no moov box")
    mdhd = _child(data, *moov, "trak", "mdia", "mdhd")
    if mdhd:
        s, _ = mdhd
        info.timescale = struct.unpack_from(">I", data, s + (20 if data[s] == 1 else 12))[0]
    stsd = _child(data, *moov, "trak", "mdia", "minf", "stbl", "stsd")
    if stsd is None:
        raise ValueError("init segment has no sample description")
    entry = next(iter_boxes(data, stsd[0] + 8, stsd[1]), None)
    if entry is None:
        raise ValueError("init segment has an empty sample description")
    fourcc, s, e = entry
    if fourcc in ("av01", "avc1", "avc3", "hvc1", "hev1"):
        _read_visual_entry(data, fourcc, s, e, info)
    elif fourcc == "mp4a":
        version = struct.unpack_from(">H", data, s + 8)[0]
        info.channels = struct.unpack_from(">H", data, s + 16)[0]
        info.sample_rate = struct.unpack_from(">I", data, s + 24)[0] >> 16
        extra = {1: 16, 2: 36}.get(version, 0)  # QuickTime sound description versions
        box = _child(data, s + _AUDIO_ENTRY + extra, e, "esds")
        if box is None:
            raise ValueError("mp4a sample entry has no esds")
        info.codecs = mp4a_codec_string(data[box[0] : box[1]])
    else:
        raise ValueError(f"unsupported sample entry {fourcc!r}")
    trex = _child(data, *moov, "mvex", "trex")
    if trex:
        info.default_sample_duration = struct.unpack_from(">I", data, trex[0] + 12)[0]
    return info


def fragment_samples(data: bytes, track: TrackInfo) -> tuple[int, int]:
    """(samples, duration in timescale ticks) of the first track fragment in a media segment."""
    count = ticks = 0
    for kind, s, e in iter_boxes(data):
        if kind != "moof":
            continue
        traf = _child(data, s, e, "traf")
        if traf is None:
            break
        default = track.default_sample_duration
        tfhd = _child(data, *traf, "tfhd")
        if tfhd:
            flags = int.from_bytes(data[tfhd[0] + 1 : tfhd[0] + 4], "big")
            pos = tfhd[0] + 8 + (8 if flags & 0x01 else 0) + (4 if flags & 0x02 else 0)
            if flags & 0x08:
                default = struct.unpack_from(">I", data, pos)[0]
        for kind2, ts, _ in iter_boxes(data, *traf):
            if kind2 != "trun":
                continue
            flags = int.from_bytes(data[ts + 1 : ts + 4], "big")
            n = struct.unpack_from(">I", data, ts + 4)[0]
            pos = ts + 8 + (4 if flags & 0x01 else 0) + (4 if flags & 0x04 else 0)
            per_sample = 4 * bin(flags & 0xF00).count("1")
            for i in range(n):
                ticks += struct.unpack_from(">I", data, pos + i * per_sample)[0] if flags & 0x100 else default
            count += n
        break
    return count, ticks
