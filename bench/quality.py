"""A package's renditions against their source, from local copies (ffprobe and FFmpeg's ``psnr``
filter; no libvmaf in this FFmpeg): frame count, timestamps continuous on the frame grid, the
video's end against the sound's, PSNR of each frame against the source scaled to the rendition."""

from __future__ import annotations

import json
import re
import subprocess
from dataclasses import dataclass
from pathlib import Path

from mpr_common.presets import AUDIO_RENDITION
from mpr_transcoder.kinds.rendition.cmaf import playlist_name


def ffprobe_json(*args: str) -> dict:
    out = subprocess.run(
        ["ffprobe", "-v", "error", "-of", "json", *args], check=True, capture_output=True, text=True
    )
    return json.loads(out.stdout)


def _probe(target: Path, stream: str) -> dict:
    """The packets' times of one stream of ``target`` (and the stream's picture size)."""
    entries = "packet=pts_time,duration_time:stream=width,height"
    return ffprobe_json("-select_streams", stream, "-show_entries", entries, str(target))


def _packets(target: Path, stream: str) -> list[dict]:
    return _probe(target, stream)["packets"]


def _video_end(packets: list[dict], fps: float) -> float:
    """When the last frame's display ends (frames are 1/fps long)."""
    return max(float(p["pts_time"]) for p in packets) + 1 / fps


def _audio_end(packets: list[dict]) -> float:
    return max(float(p["pts_time"]) + float(p.get("duration_time") or 0) for p in packets)


@dataclass(frozen=True)
class SourceMedia:
    frames: int
    fps: float
    av_end: float  # the video's end less the sound's, in seconds


def source_media(src: Path, fps: float) -> SourceMedia:
    video = _packets(src, "v:0")
    return SourceMedia(len(video), fps, _video_end(video, fps) - _audio_end(_packets(src, "a:0")))


def psnr(rendition: Path, src: Path, width: int, height: int) -> float:
    """Mean PSNR (all planes) of the rendition's frames against the source's, scaled to its size,
    paired from each one's first frame."""
    graph = (
        f"[1:v]scale={width}:{height},setsar=1,format=yuv420p,setpts=PTS-STARTPTS[ref];"
        "[0:v]setpts=PTS-STARTPTS[out];[out][ref]psnr"
    )
    run = subprocess.run(
        ["ffmpeg", "-nostdin", "-hide_banner", "-i", str(rendition), "-i", str(src)]
        + ["-lavfi", graph, "-f", "null", "-"],
        check=True,
        capture_output=True,
        text=True,
    )
    m = re.search(r"PSNR y:\S+ u:\S+ v:\S+ average:(\S+)", run.stderr)
    if m is None:
        raise RuntimeError(f"no PSNR in FFmpeg's output:\n{run.stderr[-2000:]}")
    return float(m[1])


def rendition_quality(folder: Path, rung: str, src: Path, source: SourceMedia) -> dict:
    """One rung of a package downloaded to ``folder``, through its media playlist (as a player reads
    it): frames, repeated and missing slots on the source's frame grid, the end drift of its video
    against the package's sound (less the source's own), PSNR."""
    playlist = folder / playlist_name(rung)
    probed = _probe(playlist, "v:0")
    video = probed["packets"]
    slots = sorted(round(float(p["pts_time"]) * source.fps) for p in video)
    distinct = set(slots)
    sound = _packets(folder / playlist_name(AUDIO_RENDITION), "a:0")
    width, height = probed["streams"][0]["width"], probed["streams"][0]["height"]
    return {
        "frames": len(video),
        "repeats": len(slots) - len(distinct),
        "gaps": (slots[-1] - slots[0] + 1 - len(distinct)) if slots else 0,
        "drift": _video_end(video, source.fps) - _audio_end(sound) - source.av_end,
        "psnr": psnr(playlist, src, width, height),
        "size": f"{width}x{height}",
    }
