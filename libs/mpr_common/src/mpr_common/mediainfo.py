"""ffprobe: technical metadata of media read over a (presigned) URL, never a full download."""

from __future__ import annotations

import asyncio
import json
from fractions import Fraction
from typing import Any

from .events import MediaInfo

# Demuxers MPR accepts as input: the supported file types, never playlists or concat lists.
INPUT_FORMATS = "mov,mp4,m4a,3gp,3g2,mj2,matroska,webm,avi,flv,asf,mp3,wav,flac,aac,ogg"
NETWORK_PROTOCOLS = "http,https,tcp,tls,crypto"


class ProbeError(RuntimeError):
    pass


# FFmpeg/ffprobe messages that mean the source could not be reached, not that it is bad media.
NETWORK_ERROR_MARKERS = (
    "Connection refused",
    "Connection reset",
    "Connection timed out",
    "timed out",
    "Server returned 5",
    "Server returned 403",
    "Network is unreachable",
    "Input/output error",
    "Temporary failure in name resolution",
    "Broken pipe",
)


def looks_like_network_error(tail: str) -> bool:
    return any(m in tail for m in NETWORK_ERROR_MARKERS)


def ffprobe_args(url: str, protocols: str = NETWORK_PROTOCOLS) -> list[str]:
    return [
        "ffprobe",
        "-v",
        "error",
        "-hide_banner",
        "-protocol_whitelist",
        protocols,
        "-format_whitelist",
        INPUT_FORMATS,
        "-show_format",
        "-show_streams",
        "-of",
        "json",
        "-i",
        url,
    ]


def _num(value: Any, cast=float) -> Any:
    try:
        return cast(value) if value not in (None, "N/A", "") else None
    except (TypeError, ValueError):
        return None


def _rate(value: str | None) -> float | None:
    if not value or value in ("0/0", "N/A"):
        return None
    try:
        r = Fraction(value)
    except (ValueError, ZeroDivisionError):
        return None
    return round(float(r), 3) if r > 0 else None


def parse_ffprobe(data: dict[str, Any]) -> MediaInfo:
    fmt = data.get("format") or {}
    streams = data.get("streams") or []
    video = next(
        (
            s
            for s in streams
            if s.get("codec_type") == "video" and not (s.get("disposition") or {}).get("attached_pic")
        ),
        None,
    )
    audio = next((s for s in streams if s.get("codec_type") == "audio"), None)
    duration = _num(fmt.get("duration"))
    if duration is None:
        duration = max((d for s in streams if (d := _num(s.get("duration"))) is not None), default=None)
    info = MediaInfo(
        format_name=fmt.get("format_name"),
        duration=round(duration, 3) if duration is not None else None,
        bit_rate=_num(fmt.get("bit_rate"), int),
        streams=len(streams),
    )
    if video:
        info.video_codec = video.get("codec_name")
        info.width = _num(video.get("width"), int)
        info.height = _num(video.get("height"), int)
        info.fps = _rate(video.get("avg_frame_rate")) or _rate(video.get("r_frame_rate"))
        info.pix_fmt = video.get("pix_fmt")
    if audio:
        info.audio_codec = audio.get("codec_name")
        info.sample_rate = _num(audio.get("sample_rate"), int)
        info.channels = _num(audio.get("channels"), int)
    return info


async def probe(url: str, timeout: float = 60.0, protocols: str = NETWORK_PROTOCOLS) -> MediaInfo:
    """Run ffprobe on ``url`` (no shell, stdin closed, killed after ``timeout``)."""
    proc = await asyncio.create_subprocess_exec(
        *ffprobe_args(url, protocols),
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        out, err = await asyncio.wait_for(proc.communicate(), timeout)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise ProbeError(f"ffprobe timed out after {timeout:.0f}s") from None
    if proc.returncode != 0:
        msg = err.decode("utf-8", "replace").strip().splitlines()
        raise ProbeError((msg[-1] if msg else f"ffprobe exited with {proc.returncode}")[:500])
    try:
        data = json.loads(out or b"{}")
    except ValueError:
        raise ProbeError("ffprobe printed no JSON") from None
    if not data.get("streams"):
        raise ProbeError("no audio or video stream found")
    return parse_ffprobe(data)
