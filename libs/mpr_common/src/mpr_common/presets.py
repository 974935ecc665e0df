"""Encoding presets: what a job's ``preset`` names. Pure data, shared by the API and transcoders."""

from __future__ import annotations

import msgspec

from .events import JobKind
from .keys import MEDIA_EXTENSIONS


class Rung(msgspec.Struct, frozen=True, kw_only=True):
    """One video rendition of an adaptive ladder: capped-CRF encoding (quality-driven, bounded by a VBV
    maximum rate so that a player's bandwidth estimate holds)."""

    name: str  # the rendition's name and file stem: <name>.m3u8, <name>_init.mp4, <name>_00000.m4s
    height: int  # scaled to this height keeping aspect; rungs above the source's height are left out
    # or "libx265" (tagged hvc1, as Apple's players need) or "libsvtav1" (AV1; encoder_preset is SVT's
    # number); HEVC and AV1 rungs keep an HDR source HDR, H.264 rungs are tone-mapped to SDR
    video_codec: str = "libx264"
    crf: int = 23
    max_rate: str  # e.g. "5000k"
    buf_size: str  # VBV buffer, e.g. "10000k"
    encoder_preset: str = "veryfast"
    weight: float = 1.0  # its share of the package's work, for the parent's progress


class Preset(msgspec.Struct, frozen=True, kw_only=True):
    name: str
    kinds: tuple[JobKind, ...]
    description: str
    extension: str  # output file extension (".m3u8" for HLS: the playlist)
    video_codec: str | None = None  # None: no video; "copy": stream copy
    audio_codec: str | None = None
    height: int | None = None  # scale to this height keeping aspect (never upscale)
    width: int | None = None  # thumbnails: scale to this width
    crf: int | None = None
    x264_preset: str = "veryfast"
    video_bitrate: str | None = None
    audio_bitrate: str | None = None
    audio_rate: int | None = None
    channels: int | None = None
    container: str | None = None  # ffmpeg muxer name
    hls_segment_seconds: int | None = None
    # package ladders: the video rungs, one AAC rendition (audio_bitrate), CMAF segments of
    # segment_seconds with a key frame every gop_seconds in every rung (renditions stay aligned)
    ladder: tuple[Rung, ...] = ()
    gop_seconds: float | None = None
    # storyboards: one tile every interval seconds (None: chosen from the duration), columns x rows a sheet
    tile_interval: float | None = None
    tile_columns: int = 10
    tile_rows: int = 10


_H264_LADDER = (
    Rung(name="1080p", height=1080, crf=23, max_rate="5000k", buf_size="10000k", weight=9.0),
    Rung(name="720p", height=720, crf=23, max_rate="3000k", buf_size="6000k", weight=4.0),
    Rung(name="480p", height=480, crf=24, max_rate="1400k", buf_size="2800k", weight=1.8),
    Rung(name="360p", height=360, crf=25, max_rate="800k", buf_size="1600k", weight=1.0),
)
_HEVC_RUNGS = (
    Rung(
        name="hevc-1080p",
        height=1080,
        video_codec="libx265",
        crf=26,
        max_rate="3500k",
        buf_size="7000k",
        encoder_preset="ultrafast",
        weight=12.0,
    ),
    Rung(
        name="hevc-720p",
        height=720,
        video_codec="libx265",
        crf=26,
        max_rate="2000k",
        buf_size="4000k",
        encoder_preset="ultrafast",
        weight=5.5,
    ),
)

# SVT-AV1 preset 10: measured with FFmpeg 5.1 / SVT-AV1 1.4.1 on 2 cores, a 1080p30 lavfi testsrc2 at
# CRF 35 encodes at about 3 fps of CPU per core at preset 8 (20 s of CPU for 4 s), 17 at preset 10 (7 s)
# and 34 at preset 12 (3.5 s), where x264 veryfast does 37 (3.2 s). Preset 10 costs about twice the
# H.264 rung of the same height and still compresses well ahead of it; 8 costs six times, and 12 gives
# up most of what AV1 gains.
SVT_AV1_PRESET = "10"
_AV1_RUNGS = (
    Rung(
        name="av1-1080p",
        height=1080,
        video_codec="libsvtav1",
        crf=32,
        max_rate="3000k",
        buf_size="6000k",
        encoder_preset=SVT_AV1_PRESET,
        weight=18.0,
    ),
    Rung(
        name="av1-720p",
        height=720,
        video_codec="libsvtav1",
        crf=33,
        max_rate="1800k",
        buf_size="3600k",
        encoder_preset=SVT_AV1_PRESET,
        weight=8.0,
    ),
    Rung(
        name="av1-360p",
        height=360,
        video_codec="libsvtav1",
        crf=35,
        max_rate="600k",
        buf_size="1200k",
        encoder_preset=SVT_AV1_PRESET,
        weight=2.0,
    ),
)


PRESETS: dict[str, Preset] = {
    p.name: p
    for p in [
        Preset(
            name="h264-1080p",
            kinds=("transcode", "trim"),
            extension=".mp4",
            container="mp4",
            description="H.264 High, CRF 22, max 1080 lines, AAC 160k, fast start",
            video_codec="libx264",
            audio_codec="aac",
            height=1080,
            crf=22,
            audio_bitrate="160k",
        ),
        Preset(
            name="h264-720p",
            kinds=("transcode", "trim"),
            extension=".mp4",
            container="mp4",
            description="H.264, CRF 23, max 720 lines, AAC 128k, fast start",
            video_codec="libx264",
            audio_codec="aac",
            height=720,
            crf=23,
            audio_bitrate="128k",
        ),
        Preset(
            name="h264-480p",
            kinds=("transcode", "trim"),
            extension=".mp4",
            container="mp4",
            description="H.264, CRF 24, max 480 lines, AAC 96k, fast start",
            video_codec="libx264",
            audio_codec="aac",
            height=480,
            crf=24,
            audio_bitrate="96k",
        ),
        Preset(
            name="vp9-720p",
            kinds=("transcode", "trim"),
            extension=".webm",
            container="webm",
            description="VP9 constant quality 33, max 720 lines, Opus 96k (WebM)",
            video_codec="libvpx-vp9",
            audio_codec="libopus",
            height=720,
            crf=33,
            audio_bitrate="96k",
        ),
        Preset(
            name="accurate",
            kinds=("trim",),
            extension="",
            container=None,
            description=(
                "Frame-accurate cut, source codec kept: whole GOPs inside the range are copied, the partial "
                "GOPs at both edges re-encoded to match (a full re-encode when the codec cannot be matched)"
            ),
            video_codec="smart",
            audio_codec="copy",
        ),
        Preset(
            name="copy",
            kinds=("trim", "transcode"),
            extension="",
            container=None,
            description="Stream copy (no re-encode): fast, but cuts land on key frames; output keeps the source container",
            video_codec="copy",
            audio_codec="copy",
        ),
        Preset(
            name="aac-128k",
            kinds=("audio",),
            extension=".m4a",
            container="ipod",
            description="AAC-LC 128k stereo in M4A",
            audio_codec="aac",
            audio_bitrate="128k",
            channels=2,
        ),
        Preset(
            name="mp3-192k",
            kinds=("audio",),
            extension=".mp3",
            container="mp3",
            description="MP3 192k stereo",
            audio_codec="libmp3lame",
            audio_bitrate="192k",
            channels=2,
        ),
        Preset(
            name="flac",
            kinds=("audio",),
            extension=".flac",
            container="flac",
            description="FLAC lossless",
            audio_codec="flac",
        ),
        Preset(
            name="wav-16k-mono",
            kinds=("audio",),
            extension=".wav",
            container="wav",
            description="PCM 16-bit 16 kHz mono (speech recognition input)",
            audio_codec="pcm_s16le",
            audio_rate=16000,
            channels=1,
        ),
        Preset(
            name="jpeg-320",
            kinds=("thumbnail",),
            extension=".jpg",
            container="image2",
            description="One JPEG frame, 320 px wide",
            video_codec="mjpeg",
            width=320,
        ),
        Preset(
            name="jpeg-1280",
            kinds=("thumbnail",),
            extension=".jpg",
            container="image2",
            description="One JPEG frame, 1280 px wide",
            video_codec="mjpeg",
            width=1280,
        ),
        Preset(
            name="png-640",
            kinds=("thumbnail",),
            extension=".png",
            container="image2",
            description="One PNG frame, 640 px wide",
            video_codec="png",
            width=640,
        ),
        Preset(
            name="storyboard-160",
            kinds=("storyboard",),
            extension=".vtt",
            container="image2",
            description=(
                "Seek previews: JPEG sprite sheets of 10x10 tiles 160 px wide, a WebVTT thumbnails track "
                "pointing into them (#xywh), and a poster frame (poster.jpg)"
            ),
            video_codec="mjpeg",
            width=160,
        ),
        Preset(
            name="abr-h264",
            kinds=("package", "rendition"),
            extension=".m3u8",
            container="cmaf",
            description=(
                "Adaptive package: H.264 1080p/720p/480p/360p (capped CRF) + AAC 128k, key frames every 2 s "
                "in every rendition, 4 s CMAF segments, an HLS master playlist and a DASH MPD"
            ),
            video_codec="libx264",
            audio_codec="aac",
            audio_bitrate="128k",
            hls_segment_seconds=4,
            gop_seconds=2.0,
            ladder=_H264_LADDER,
        ),
        Preset(
            name="abr-h264-hevc",
            kinds=("package", "rendition"),
            extension=".m3u8",
            container="cmaf",
            description=(
                "abr-h264 plus HEVC 1080p/720p renditions (hvc1) for players that decode HEVC, at about "
                "two thirds of the H.264 bit rates"
            ),
            video_codec="libx264",
            audio_codec="aac",
            audio_bitrate="128k",
            hls_segment_seconds=4,
            gop_seconds=2.0,
            ladder=_H264_LADDER + _HEVC_RUNGS,
        ),
        Preset(
            name="abr-av1",
            kinds=("package", "rendition"),
            extension=".m3u8",
            container="cmaf",
            description=(
                "Adaptive package: AV1 (SVT-AV1 preset 10, capped CRF) 1080p/720p/360p beside an H.264 "
                "720p/360p fallback in one master playlist and MPD (players pick by CODECS) + AAC 128k; "
                "an HDR source stays HDR on the AV1 renditions and is tone-mapped on the H.264 ones"
            ),
            video_codec="libx264",
            audio_codec="aac",
            audio_bitrate="128k",
            hls_segment_seconds=4,
            gop_seconds=2.0,
            ladder=_AV1_RUNGS + (_H264_LADDER[1], _H264_LADDER[3]),
        ),
        Preset(
            name="preview",
            kinds=("preview",),
            extension="",
            container=None,
            description=(
                "Animated preview for listings: clips from evenly spread moments (6 x 1 s, 320 px wide, 10 fps "
                "by default: see the job's preview options), looping; the output key's extension chooses "
                "animated WebP (.webp) or GIF (.gif)"
            ),
            video_codec="libwebp_anim",
        ),
        Preset(
            name="hls-720p",
            kinds=("hls",),
            extension=".m3u8",
            container="hls",
            description="HLS VOD: H.264 max 720 lines + AAC 128k, 4 s MPEG-TS segments",
            video_codec="libx264",
            audio_codec="aac",
            height=720,
            crf=23,
            audio_bitrate="128k",
            hls_segment_seconds=4,
        ),
        Preset(
            name="hls-480p",
            kinds=("hls",),
            extension=".m3u8",
            container="hls",
            description="HLS VOD: H.264 max 480 lines + AAC 96k, 4 s MPEG-TS segments",
            video_codec="libx264",
            audio_codec="aac",
            height=480,
            crf=24,
            audio_bitrate="96k",
            hls_segment_seconds=4,
        ),
    ]
}

DEFAULT_PRESET: dict[JobKind, str] = {
    "transcode": "h264-720p",
    "trim": "accurate",
    "thumbnail": "jpeg-320",
    "audio": "aac-128k",
    "hls": "hls-720p",
    "package": "abr-h264",
    "rendition": "abr-h264",
    "storyboard": "storyboard-160",
    "preview": "preview",
}

# The rendition that carries a package's sound (one AAC track shared by every video rung).
AUDIO_RENDITION = "audio"
# The files a package's folder holds besides its renditions, written last (the package is whole then).
MASTER_PLAYLIST = "master.m3u8"
DASH_MANIFEST = "manifest.mpd"
STORYBOARD_VTT = "storyboard.vtt"
POSTER = "poster.jpg"

# EBU R128 targets of loudness normalisation (loudnorm's two passes).
LOUDNORM_TARGET_I = -23.0  # LUFS
LOUDNORM_TARGET_TP = -1.0  # dBTP
LOUDNORM_TARGET_LRA = 7.0  # LU


# What a job can write: every preset's extension, media kept as is, and HLS segments.
OUTPUT_EXTENSIONS: frozenset[str] = frozenset(
    {p.extension for p in PRESETS.values() if p.extension}
    | MEDIA_EXTENSIONS
    | {".ts", ".m4s", ".vtt", ".mpd", ".jpg", ".webp", ".gif"}
)
