"""The FFmpeg commands of a chunked transcode (pure, unit-tested): a video chunk, and the join.

- A video chunk is the transcode's own video encode (its codec, CRF, scale) of exactly the source
  frames presented in ``[start, end)`` (input seeking, as a package's chunks: FFmpeg reads only that
  byte range of the source, with HTTP range requests), video only, its first frame moved to 0. Chunks
  are cut on a grid of :data:`GRID_SECONDS`; each starts with a key frame and its GOPs are closed, so
  it decodes without any frame of another chunk. Inside a chunk the encoder places key frames as it
  does for the whole transcode: forcing one every 2 s as well cost 6 % more bytes for 0.3 dB more
  PSNR (320x180, 10 fps, CRF 23), a different encode than the unchunked one; without, the chunked
  output is within 0.05 dB of it. When the source's scene cuts are known, a chunk boundary moves to
  the cut nearest it within :data:`CUT_TOLERANCE` of the chunk length (no chunk shorter than
  :data:`SHORTEST_CHUNK` of it; the grid where no cut is near): a join at a cut shows no quality step
  mid-shot, and the chunk's first key frame is one the encoder needs there anyway. Inside a chunk, key
  frames are forced at its cuts (:func:`chunk_key_frames`), as the unchunked transcode forces them.
  When they are not known yet, each chunk runs the scene detector as a second output of the picture it
  decodes anyway (``find_scenes``), over its own span; the join keeps every chunk's cuts
  (:func:`chunk_scene_cuts`, :func:`merge_scene_cuts`) as the source's scenes. A cut exactly at a chunk
  boundary is seen by no chunk: the first frame of a chunk has no frame before it to be compared with.
- The sound is one child over the whole source (a join in AAC would click): the transcode's own audio
  encode, alone (see :mod:`.`).
- The join is a stream copy: FFmpeg's concat demuxer reads the chunks one after the other (each placed
  at the end of the one before: the sum of its frames' durations), the sound beside them, into the
  transcode's container with ``+faststart``. Only MP4 and MOV outputs are chunked: there a stream copy
  keeps every frame's timestamp and the sound's priming exactly; the others (WebM, a stream copy
  preset, HLS) run as one job."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

from mpr_common.events import ChunkSpan
from mpr_common.presets import Preset
from mpr_common.scenes import key_frame_times

from ...ffmpeg.argv import GLOBAL_ARGS, LOCAL_FILES, VIDEO_TIMING, fmt, local_input, size_limit, whitelist
from ...ffmpeg.filtergraph import WatermarkSource, watermark_inputs, watermark_outputs
from ...ffmpeg.scdet import scene_output
from ..colour import SDR_TAGS
from ..single_output import scale_height, video_encoder

# A chunked transcode's chunks start on multiples of this (each on a key frame).
GRID_SECONDS = 2.0
# With the source's scene cuts known: how far (a share of the chunk length) a boundary moves to a cut,
# and the shortest chunk such a move may leave (a share of it too: each chunk is a child job's overhead).
CUT_TOLERANCE = 0.25
SHORTEST_CHUNK = 0.5
CHUNKED_CONTAINERS = ("mp4", "mov")
# The demuxers of the join: the concat list it writes, and the MP4 parts the children wrote.
JOIN_FORMATS = "concat,mov"
PART_FORMATS = "mov"
CONCAT_LIST = "parts.ffconcat"


def chunkable_preset(preset: Preset) -> bool:
    """Whether a transcode with ``preset`` can be encoded in chunks and joined by a stream copy."""
    return preset.container in CHUNKED_CONTAINERS and preset.video_codec not in (None, "copy")


def video_chunk_args(
    source: list[str],
    preset: Preset,
    out: Path,
    max_bytes: int,
    watermark: WatermarkSource | None = None,
    to_sdr: str | None = None,
    key_frames: Sequence[float] = (),
    *,
    find_scenes: bool = False,
) -> list[str]:
    """One video chunk: ``source`` the input arguments of its range (``ffmpeg.argv.input_args``);
    ``watermark`` drawn and ``to_sdr`` (an HDR source's tone mapping) applied as the unchunked
    transcode does; ``key_frames``: seconds of the chunk where a key frame is forced (its scene cuts,
    :func:`chunk_key_frames`); ``find_scenes``: the scene detector is a second output
    (:func:`~...ffmpeg.scdet.scene_output`), its cuts in the command's report, in seconds from the
    chunk's start (input seeking moves its start to 0; see :func:`chunk_scene_cuts`)."""
    assert preset.video_codec is not None
    filters = ["setpts=PTS-STARTPTS"]
    if preset.height:
        filters.append(scale_height(preset.height))
    if to_sdr:
        filters.append(to_sdr)
    if watermark is None:
        picture = ["-map", "0:v:0", "-vf", ",".join(filters)]
    else:
        picture = [*watermark_inputs(watermark), *watermark_outputs(",".join(filters), watermark)]
    return [
        *GLOBAL_ARGS,
        *source,
        *picture,
        *["-an", "-sn", "-dn", "-c:v", preset.video_codec, *VIDEO_TIMING],
        *video_encoder(preset),
        *(SDR_TAGS if to_sdr else ()),
        *(["-force_key_frames", ",".join(fmt(t) for t in key_frames)] if key_frames else []),
        *["-flags", "+cgop"],
        *size_limit(max_bytes),
        *["-f", "mp4", str(out)],
        *(scene_output() if find_scenes else []),
    ]


def _first_frame(chunk: ChunkSpan, fps: float | None) -> float:
    """When a chunk's first frame is presented (seconds of the source): the first one at or after its
    start, on a constant ``fps`` source up to a frame after it."""
    if fps is not None and math.isfinite(fps) and fps > 0:
        return max(chunk.start, math.ceil(chunk.start * fps - 1e-6) / fps)
    return chunk.start


def chunk_scene_cuts(found: Sequence[float], chunk: ChunkSpan, fps: float | None) -> list[float]:
    """The cuts a chunk's detector ``found`` (seconds from its start) in seconds of the source, sorted,
    each once: only those inside its span, after its first frame (that frame starts the chunk, it is
    no cut the detector saw) and before its end."""
    first = _first_frame(chunk, fps)
    cuts = {round(chunk.start + t, 6) for t in found if math.isfinite(t)}
    return sorted(c for c in cuts if c > first + 1e-6 and (chunk.end is None or c < chunk.end))


def merge_scene_cuts(chunks: Sequence[tuple[ChunkSpan, Sequence[float]]], duration: float) -> list[float]:
    """The source's scene cuts from every chunk's (``chunk_scene_cuts``: seconds of the source), of a
    source of ``duration`` seconds: each chunk's inside its own span and the source, sorted, each once."""
    merged: set[float] = set()
    for span, cuts in chunks:
        end = duration if span.end is None else min(span.end, duration)
        merged.update(c for c in cuts if math.isfinite(c) and span.start < c < end)
    return sorted(merged)


def chunk_key_frames(scenes: Sequence[float], chunk: ChunkSpan, fps: float | None) -> list[float]:
    """Seconds of a chunk's own time (its first frame at 0) of the scene cuts inside it, as
    :func:`~mpr_common.scenes.key_frame_times` keeps them. A chunk's first frame is the first one
    presented at or after its start: on a constant ``fps`` source whose frames sit at multiples of a
    frame duration that is up to a frame later than the start, and each cut is counted from that frame
    (counted from the start, a forced key frame could land on the frame after the cut's)."""
    return key_frame_times(scenes, _first_frame(chunk, fps), chunk.end)


def concat_list(names: list[str]) -> str:
    """The concat demuxer's list of the chunks, in order: plain names beside the list (its safe mode
    refuses anything else)."""
    for name in names:
        if not name or "/" in name or not all(c.isalnum() or c in "._-" for c in name):
            raise ValueError(f"not a plain file name: {name!r}")
    return "ffconcat version 1.0\n" + "".join(f"file {n}\n" for n in names)


def join_args(listing: Path, sound: Path | None, out: Path, container: str, max_bytes: int) -> list[str]:
    """The join: the chunks listed in ``listing`` and the ``sound`` (None: a silent source), copied
    into ``out`` with the index first (``+faststart``)."""
    args = [*GLOBAL_ARGS, *whitelist(LOCAL_FILES, JOIN_FORMATS), "-f", "concat", "-i", str(listing)]
    if sound is not None:
        args += local_input(sound, PART_FORMATS)
    args += ["-map", "0:v:0", *(["-map", "1:a:0"] if sound is not None else [])]
    return [
        *args,
        *["-c", "copy", "-movflags", "+faststart"],
        *size_limit(max_bytes),
        *["-f", container, str(out)],
    ]
