"""The tables a trim chooses from: what each output file type holds and the encoders a re-encode into it
uses (:data:`CONTAINERS`), how the sound goes in, and the encoder whose frames match the source's so that
re-encoded edges sit beside copied GOPs (:func:`matching_encoder`)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

# --- containers ---------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Container:
    """What an output file type holds, and the encoders a re-encode into it uses."""

    muxer: str
    video_copy: frozenset[str]  # source video codecs a smart cut keeps (empty: always re-encode)
    audio_copy: frozenset[str]  # source audio codecs copied as they are
    video_encoder: list[str] | None  # None: an audio-only container
    audio_encoder: list[str]
    faststart: bool = False
    rotation: bool = False  # keeps a display matrix (set from the "rotate" tag)
    passthrough: bool = True  # timestamps as they are (variable frame rate); False: constant rate
    subtitle_codec: str | None = None  # what the source's text subtitles become (None: left out)


_X264 = ["-c:v", "libx264", "-preset", "veryfast", "-crf", "20", "-pix_fmt", "yuv420p", "-profile:v", "high"]
_VP9 = ["-c:v", "libvpx-vp9", "-crf", "32", "-b:v", "0", "-pix_fmt", "yuv420p"]
_VP9 += ["-deadline", "good", "-cpu-used", "5", "-row-mt", "1"]
_AAC = ["-c:a", "aac", "-b:a", "160k"]
_OPUS = ["-c:a", "libopus", "-b:a", "128k"]
_MP3 = ["-c:a", "libmp3lame", "-q:a", "2"]
_H26X = frozenset({"h264", "hevc"})
_MP4_AUDIO = frozenset({"aac", "mp3", "ac3", "eac3", "alac"})
_PCM = frozenset({"pcm_s16le", "pcm_s24le", "pcm_s32le", "pcm_f32le", "pcm_s16be", "pcm_s24be"})


def _quicktime(muxer: str, audio: frozenset[str]) -> Container:
    """MP4 and MOV: H.264/HEVC kept, a display matrix, the index up front, mov_text subtitles."""
    return Container(
        muxer, _H26X, audio, _X264, _AAC, faststart=True, rotation=True, subtitle_codec="mov_text"
    )


CONTAINERS: dict[str, Container] = {
    ".mp4": _quicktime("mp4", _MP4_AUDIO),
    ".m4v": _quicktime("mp4", _MP4_AUDIO),
    ".mov": _quicktime("mov", _MP4_AUDIO | _PCM),
    ".mkv": Container(
        "matroska",
        _H26X,
        _MP4_AUDIO | _PCM | {"opus", "vorbis", "flac", "mp2", "dts"},
        _X264,
        _AAC,
        subtitle_codec="srt",
    ),
    ".ts": Container("mpegts", _H26X, frozenset({"aac", "mp3", "mp2", "ac3", "eac3", "opus"}), _X264, _AAC),
    # WebM holds VP8/VP9/AV1 only: an H.264 or HEVC source is re-encoded to VP9.
    ".webm": Container(
        "webm", frozenset(), frozenset({"opus", "vorbis"}), _VP9, _OPUS, subtitle_codec="webvtt"
    ),
    # Containers without the decode/presentation times B-frames need (or with parameter sets in the
    # header only): the range is re-encoded, to their usual codecs.
    ".avi": Container("avi", frozenset(), frozenset({"mp3"}), _X264, _MP3, passthrough=False),
    ".flv": Container("flv", frozenset(), frozenset({"aac", "mp3"}), _X264, _AAC, passthrough=False),
    ".wmv": Container(
        "asf",
        frozenset(),
        frozenset({"wmav2"}),
        ["-c:v", "wmv2", "-q:v", "3"],
        ["-c:a", "wmav2", "-b:a", "160k"],
        passthrough=False,
    ),
    # Sound only: the picture is left out.
    ".mp3": Container("mp3", frozenset(), frozenset({"mp3"}), None, _MP3),
    ".m4a": Container("ipod", frozenset(), frozenset({"aac", "alac"}), None, _AAC, faststart=True),
    ".aac": Container("adts", frozenset(), frozenset({"aac"}), None, _AAC),
    ".wav": Container("wav", frozenset(), _PCM, None, ["-c:a", "pcm_s16le"]),
    ".flac": Container("flac", frozenset(), frozenset({"flac"}), None, ["-c:a", "flac"]),
    ".ogg": Container(
        "ogg", frozenset(), frozenset({"vorbis", "opus", "flac"}), None, ["-c:a", "libvorbis", "-q:a", "5"]
    ),
}


# Lossless sound is re-encoded to the same codec rather than copied: nothing is lost, and its packets
# (4096 samples, about 0.1 s) would make the cut coarser than a frame.
_LOSSLESS = _PCM | {"flac", "alac"}


def sound_encoder(codec: str | None, container: Container) -> list[str] | None:
    """How the sound goes into ``container``: None, its packets are copied; else the encoder options."""
    if codec in container.audio_copy:
        return ["-c:a", str(codec)] if codec in _LOSSLESS else None
    return container.audio_encoder


def container_for(output: Path) -> Container:
    try:
        return CONTAINERS[output.suffix.lower()]
    except KeyError:
        raise ValueError(f"a trim cannot write {output.suffix or 'files without an extension'}") from None


# --- the encoder that matches the source --------------------------------------------------------------

_X264_PROFILES = {
    "Baseline": "baseline",
    "Constrained Baseline": "baseline",
    "Main": "main",
    "High": "high",
    "Progressive High": "high",
    "Constrained High": "high",
    "High 10": "high10",
    "High 4:2:2": "high422",
    "High 4:4:4 Predictive": "high444",
}
_X264_PIX_FMTS = frozenset(
    {"yuv420p", "yuvj420p", "yuv422p", "yuvj422p", "yuv444p", "yuvj444p", "yuv420p10le", "yuv422p10le"}
    | {"yuv444p10le", "gray", "gray10le"}
)
# None: let x265 derive the profile from the pixel format (the range extensions).
_X265_PROFILES: dict[str, str | None] = {"Main": "main", "Main 10": "main10", "Rext": None}
_X265_PIX_FMTS = frozenset(
    {"yuv420p", "yuvj420p", "yuv422p", "yuvj422p", "yuv444p", "yuvj444p", "yuv420p10le", "yuv422p10le"}
    | {"yuv444p10le", "yuv420p12le", "yuv422p12le", "yuv444p12le", "gray", "gray10le", "gray12le"}
)
_COLOUR_OPTIONS = {
    "color_primaries": "-color_primaries",
    "color_transfer": "-color_trc",
    "color_space": "-colorspace",
    "color_range": "-color_range",
}
# Edges are a second or two of picture beside copied ones: high quality, fast.
EDGE_X264 = ["-preset", "veryfast", "-crf", "18"]
EDGE_X265 = ["-preset", "veryfast", "-crf", "20"]


def _level(stream: Mapping[str, Any]) -> int:
    try:
        return int(stream.get("level") or 0)
    except (TypeError, ValueError):
        return 0


def _x264_options(profile: str | None, pix_fmt: str | None, level: int) -> list[str] | None:
    x264_profile = _X264_PROFILES.get(profile or "")
    if x264_profile is None or pix_fmt not in _X264_PIX_FMTS:
        return None
    args = ["-c:v", "libx264", *EDGE_X264, "-bf", "0", "-profile:v", x264_profile, "-pix_fmt", pix_fmt]
    if level >= 10:  # ffprobe: 31 is level 3.1 (9, level 1b, is left to x264)
        args += ["-level:v", f"{level // 10}.{level % 10}"]
    return args


def _x265_options(profile: str | None, pix_fmt: str | None, level: int) -> list[str] | None:
    if profile not in _X265_PROFILES or pix_fmt not in _X265_PIX_FMTS:
        return None
    args = ["-c:v", "libx265", *EDGE_X265, "-pix_fmt", pix_fmt]
    x265_profile = _X265_PROFILES[profile]
    if x265_profile is not None:
        args += ["-profile:v", x265_profile]
    params = ["log-level=error", "bframes=0"]
    if level > 0:  # ffprobe: general_level_idc, 30 times the level (93 is level 3.1)
        params.append(f"level-idc={level / 30:g}")
    return [*args, "-x265-params", ":".join(params)]


def _colour_options(stream: Mapping[str, Any]) -> list[str]:
    """The source's colour description, where it states one."""
    args: list[str] = []
    for key, option in _COLOUR_OPTIONS.items():
        value = stream.get(key)
        if value and value not in ("unknown", "unspecified", "reserved"):
            args += [option, str(value)]
    return args


_ENCODERS = {"h264": _x264_options, "hevc": _x265_options}


def matching_encoder(stream: Mapping[str, Any]) -> list[str] | None:
    """Encoder options that make frames a decoder can take in the middle of ``stream`` (ffprobe's view
    of the source's video): the same codec, profile, level and pixel format, no B-frames (see the
    module's note on decode times). None when no encoder here can match it."""
    if stream.get("field_order") not in (None, "", "unknown", "progressive"):
        return None  # interlaced: the edges would need field coding matched too
    encoder = _ENCODERS.get(stream.get("codec_name") or "")
    if encoder is None:
        return None
    args = encoder(stream.get("profile"), stream.get("pix_fmt"), _level(stream))
    if args is None:
        return None
    return args + _colour_options(stream)


# Codecs whose display matrix (a phone's rotation) a one-frame MOV copy keeps: NUT drops it.
ROTATION_CODECS = frozenset({"h264", "hevc", "mpeg4", "av1"})


# NAL unit type of an access unit delimiter, which the MPEG-TS muxer adds to every packet.
AUD = {"h264": 9, "hevc": 35}
