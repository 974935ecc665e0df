"""Encoding presets: what a job's ``preset`` names. Pure data, shared by the API and transcoders."""

from __future__ import annotations

import msgspec

from .events import JobKind
from .keys import MEDIA_EXTENSIONS


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
            name="copy",
            kinds=("trim", "transcode"),
            extension="",
            container=None,
            description="Stream copy (no re-encode): cuts land on key frames; output keeps the source container",
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
    "trim": "copy",
    "thumbnail": "jpeg-320",
    "audio": "aac-128k",
    "hls": "hls-720p",
}


# What a job can write: every preset's extension, media kept as is, and HLS segments.
OUTPUT_EXTENSIONS: frozenset[str] = frozenset(
    {p.extension for p in PRESETS.values() if p.extension} | MEDIA_EXTENSIONS | {".ts", ".m4s", ".vtt"}
)
