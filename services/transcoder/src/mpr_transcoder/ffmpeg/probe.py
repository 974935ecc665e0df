"""ffprobe of a job's source (or of an output it wrote), run by :mod:`.process` like every FFmpeg child.

The argument list and the reading of ffprobe's result (``mpr_common.mediainfo.probe_result``) are
``mpr_common.mediainfo``'s, shared with the catalog's prober: both see a source the same way."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass

import msgspec

from mpr_common.colour import dynamic_range
from mpr_common.events import MediaInfo
from mpr_common.mediainfo import (
    NETWORK_PROTOCOLS,
    ProbeError,
    ffprobe_args,
    first_frame_args,
    frame_hdr_metadata,
    probe_result,
    redact,
)

from .argv import image_probe_args
from .errors import FfmpegError
from .process import capture


async def probe(
    url: str,
    timeout: float = 60.0,
    protocols: str = NETWORK_PROTOCOLS,
    *,
    name: str | None = None,
    max_memory: int | None = None,
) -> MediaInfo:
    """Run ffprobe on ``url`` (killed after ``timeout``). A :class:`ProbeError` never holds the URL:
    ``name`` (the object's key) stands in its place, or the URL without its query string."""
    try:
        done = await capture(ffprobe_args(url, protocols), timeout, max_memory=max_memory)
    except TimeoutError:
        raise ProbeError(f"ffprobe timed out after {timeout:.0f}s") from None
    return probe_result(done.returncode, done.stdout, done.stderr, url, name)


log = logging.getLogger("mpr.transcoder")


async def with_hdr_metadata(
    info: MediaInfo,
    url: str,
    timeout: float,
    protocols: str = NETWORK_PROTOCOLS,
    *,
    max_memory: int | None = None,
) -> MediaInfo:
    """``info`` with the mastering display and content light level of an HDR source whose probe did not
    find them in its container (HEVC in MP4 carries them in SEI only): read from its first frame. An SDR
    source, or one whose metadata are known, is returned as is without running anything. When the frame
    cannot be read the source stays without metadata: its rungs are still HDR, only without them."""
    if dynamic_range(info) == "sdr" or info.mastering_display or info.content_light:
        return info
    try:
        done = await capture(first_frame_args(url, protocols), timeout, max_memory=max_memory)
        if done.returncode != 0:
            raise ValueError(f"ffprobe exited with {done.returncode}")
        mastering, light = frame_hdr_metadata(json.loads(done.stdout or b"{}"))
    except (TimeoutError, ValueError) as exc:
        log.warning("no HDR metadata read from the first frame: %s", exc)
        return info
    return msgspec.structs.replace(info, mastering_display=mastering, content_light=light)


async def ffprobe_output(args: list[str], timeout: float, what: str) -> str:
    """Run an ffprobe of a file the job made (``what`` names it in the error); its stdout. Raises
    :class:`FfmpegError` with its redacted stderr when it fails, ``TimeoutError`` after ``timeout``."""
    done = await capture(args, timeout)
    if done.returncode != 0:
        tail = redact(done.stderr.decode("utf-8", "replace")).strip()
        raise FfmpegError(f"ffprobe of {what} exited with {done.returncode}", done.returncode, tail)
    return done.stdout.decode("utf-8", "replace")


@dataclass(frozen=True, slots=True)
class ImageInfo:
    format_name: str  # FFmpeg's demuxer: png_pipe or jpeg_pipe
    width: int
    height: int


async def probe_image(url: str, timeout: float, *, name: str) -> ImageInfo:
    """ffprobe of a watermark image through the image demuxers only (``argv.image_probe_args``): raises
    :class:`ProbeError` (naming ``name``, never the URL) when it is not a PNG or JPEG picture."""
    try:
        done = await capture(image_probe_args(url), timeout)
    except TimeoutError:
        raise ProbeError(f"ffprobe of {name} timed out after {timeout:.0f}s") from None
    if done.returncode != 0:
        text = redact(done.stderr.decode("utf-8", "replace"), {url: name}).strip().splitlines()
        raise ProbeError(f"{name}: {(text[-1] if text else 'unreadable')[:300]}")
    try:
        found = json.loads(done.stdout)
        video = next(s for s in found.get("streams", []) if s.get("codec_type") == "video")
        return ImageInfo(str(found["format"]["format_name"]), int(video["width"]), int(video["height"]))
    except (ValueError, KeyError, TypeError, StopIteration):
        raise ProbeError(f"{name}: no picture found") from None
