"""The ``storyboard`` kind. Storyboards: what players show over the seek bar. Small frames ("tiles") packed into JPEG sprite sheets,
a WebVTT thumbnails track whose cues point into them (``storyboard_000.jpg#xywh=x,y,w,h``), and a full-size
poster frame.

Cost. A tile is a key frame: only key frames are decoded (``-skip_frame nokey``), and the demuxer drops the
other video packets before they reach the decoder (``-discard:v nokey``). Each tile shows the first key
frame of its interval, so its cue runs from the interval's start to the next tile's; an interval without a
key frame (a source with sparse key frames) has no tile of its own: the cue before it grows over it, and no
two tiles repeat a picture.

Two ways to reach those key frames, chosen per source by :func:`seeks_per_tile`:

- one pass over the source (the default): every byte read once, in one request;
- one short run per tile with input seeking: a process, a request or two and the container's index
  each, and about 2 MB read (an open range request fills the TCP window whatever FFmpeg then reads).

Measured with this module on a 600 s 640x360 H.264 source at 1.6 Mb/s (122 MB, a key frame every 2 s),
served over HTTP with range requests at 50 MB/s and 30 ms a request (poster included):

    tiles (interval, source between tiles)   one pass          a seek per tile
    100 (6 s, 1.2 MB)                         2.7 s, 122 MB     6.8 s, 264 MB
    25 (24 s, 4.8 MB)                         2.9 s, 122 MB     1.9 s, 60 MB
    10 (60 s, 12 MB)                          2.8 s, 122 MB     1.0 s, 21 MB

Seeking wins once a few megabytes lie between two tiles: long, high bit-rate sources (2 h at 5 Mb/s:
300 tiles 24 s apart, 15 MB each; the pass would read 4.5 GB). One FFmpeg with an input per tile is no
better: it keeps reading every input (224 MB for 25 tiles).

Scenes. The poster is taken a little after the source's scene cut nearest 10 % in (:func:`poster_time`),
when an earlier job on the source kept its scenes (``..scene_store``): a storyboard never decodes the
whole source to find them, which would cost more than its key frames. The tiles stay on their time grid:
a seek-bar thumbnail must show the picture at its cue's time, and a tile is a key frame of the source,
which scene cuts need not be (decoding up to each cut would cost the whole decode that key frames save).

Sheets have ``columns x rows`` tiles; a storyboard that fits on one sheet gets only the rows (or columns)
it needs, and the last sheet of a longer one keeps the full size with its unused cells black (every sheet
of a storyboard has the same size)."""

from __future__ import annotations

import asyncio
import math
import re
import shutil
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from mpr_common.events import MediaInfo
from mpr_common.presets import POSTER, STORYBOARD_VTT, Preset
from mpr_common.scenes import scene_moments

from ..ffmpeg import ProgressReport, Runner
from ..ffmpeg.argv import GLOBAL_ARGS, LOCAL_FILES, NETWORK_PROTOCOLS, input_args, output_slack, whitelist
from ..job_errors import JobError
from ..steps import StepRunner
from ..together import together
from .base import JobContext, Work
from .colour import to_sdr_filter
from .single_output import leader_skip

MIN_INTERVAL = 2.0  # seconds: a tile every 2 s at most (closer tiles mostly repeat a picture)
MAX_SHORT_INTERVAL = 10.0  # sources up to TARGET_TILES * 10 s get a tile at least every 10 s
TARGET_TILES = 100  # one sheet for sources up to about 17 minutes
MAX_TILES = 300  # longer sources get a longer interval: at most 3 full sheets
# Bytes of source between two tiles from which one seek per tile reads less and runs faster than one
# pass (see the module's docstring: the crossover lies between 1.2 and 4.8 MB).
SEEK_MIN_BYTES = 4 * 1024 * 1024
SEEK_CONCURRENCY = 4  # per-tile runs at once: each waits on the network far more than on the CPU

SHEET_PATTERN = "storyboard_%03d.jpg"
TILE_PATTERN = "tile_%04d.png"
JPEG_QUALITY = "4"  # mjpeg -q:v (2 best .. 31 worst): sheets are fetched by players while seeking
POSTER_QUALITY = "2"
_TILE_KEY = "mpr.tile"  # metadata added to each tile so that the print filter reports its time


@dataclass(frozen=True)
class StoryboardResult:
    vtt: Path
    sprites: list[Path]  # the sheets, in order: storyboard_000.jpg, storyboard_001.jpg …
    poster: Path
    tiles: int
    interval: float  # seconds: the grid tiles are taken from (one tile per interval at most)
    tile_width: int
    tile_height: int
    columns: int  # of each sheet
    rows: int


def tile_interval(duration: float, preset: Preset) -> float:
    """Seconds between tiles: the preset's, else about ``TARGET_TILES`` over the source, between
    ``MIN_INTERVAL`` and ``MAX_SHORT_INTERVAL``, and longer when that would exceed ``MAX_TILES``. Whole
    seconds (tidy cue times). Never more than ``MAX_TILES`` tiles, even with the preset's interval."""
    duration = max(0.0, duration)
    cap = duration / MAX_TILES
    if preset.tile_interval:
        return float(max(preset.tile_interval, math.ceil(cap)))
    chosen = min(max(duration / TARGET_TILES, MIN_INTERVAL), MAX_SHORT_INTERVAL)
    return float(math.ceil(max(chosen, cap)))


def tile_size(info: MediaInfo, width: int) -> tuple[int, int]:
    """A tile ``width`` wide with the source's aspect, its height even (16:9 when the probe found no size)."""
    if info.width and info.height:
        aspect = info.height / info.width
    else:
        aspect = 9 / 16
    return width, max(2, round(width * aspect / 2) * 2)


def sheet_layout(max_tiles: int, columns: int, rows: int) -> tuple[int, int]:
    """Columns and rows of every sheet: the preset's, or fewer when all tiles fit on one sheet."""
    if max_tiles <= columns:
        return max(1, max_tiles), 1
    if max_tiles <= columns * rows:
        return columns, math.ceil(max_tiles / columns)
    return columns, rows


def seeks_per_tile(info: MediaInfo, interval: float) -> bool:
    """Whether one input seek per tile beats one pass over the source (see the module's docstring)."""
    if not info.bit_rate:
        return False
    return info.bit_rate / 8 * interval >= SEEK_MIN_BYTES


def default_poster_time(duration: float) -> float:
    return leader_skip(duration)


def poster_time(duration: float, scenes: Sequence[float] = ()) -> float:
    """Where the poster is taken: a little after the scene cut nearest :func:`default_poster_time` (a
    picture of one scene, never a transition), that time itself when the source has no cut."""
    at, _ = scene_moments(duration, scenes, [default_poster_time(duration)], include_start=False)
    return at[0]


def cue_times(tile_times: list[float], interval: float, duration: float) -> list[tuple[float, float]]:
    """Each tile's cue, from the start of the grid interval its picture lies in to the next tile's (the
    first from 0, the last to ``duration``): contiguous, covering the whole source. ``tile_times`` are the
    pictures' times in order, at most one per interval (tiles past the end have no cue)."""
    starts: list[float] = []
    for t in tile_times:
        start = math.floor(max(0.0, t) / interval) * interval if starts else 0.0
        if start >= duration or (starts and start <= starts[-1]):
            break
        starts.append(start)
    return [(s, starts[i + 1] if i + 1 < len(starts) else duration) for i, s in enumerate(starts)]


def _timestamp(seconds: float) -> str:
    ms = round(seconds * 1000)
    h, rest = divmod(ms, 3_600_000)
    m, rest = divmod(rest, 60_000)
    s, ms = divmod(rest, 1000)
    return f"{h:02d}:{m:02d}:{s:02d}.{ms:03d}"


def webvtt(
    tiles: list[tuple[float, float]],
    sheet_names: list[str],
    tile_w: int,
    tile_h: int,
    columns: int,
    rows: int,
) -> str:
    """A WebVTT thumbnails track: one cue per tile, ``<sheet>#xywh=x,y,w,h``, tiles filling each sheet row
    by row (``columns x rows`` a sheet), sheets named relatively (beside the track)."""
    per_sheet = columns * rows
    needed = math.ceil(len(tiles) / per_sheet)
    if len(sheet_names) < needed:
        raise ValueError(f"{len(tiles)} tiles need {needed} sheets of {per_sheet}, got {len(sheet_names)}")
    out = ["WEBVTT", ""]
    for i, (start, end) in enumerate(tiles):
        sheet, cell = divmod(i, per_sheet)
        row, col = divmod(cell, columns)
        out += [
            f"{_timestamp(start)} --> {_timestamp(end)}",
            f"{sheet_names[sheet]}#xywh={col * tile_w},{row * tile_h},{tile_w},{tile_h}",
            "",
        ]
    return "\n".join(out)


def filter_path(path: Path) -> str:
    """``path`` as the value of a filter option inside a filter graph: escaped once for the option
    parser (``\\ ' :``) and once more for the graph parser (``\\ ' [ ] , ;``)."""
    value = re.sub(r"([\\':])", r"\\\1", str(path))
    return re.sub(r"([\\'\[\],;])", r"\\\1", value)


def image_pattern(folder: Path, pattern: str) -> str:
    """A numbered file pattern in ``folder`` for FFmpeg's image2 (de)muxer: a ``%`` of the folder's path
    doubled so that only ``pattern``'s counts."""
    return f"{str(folder).replace('%', '%%')}/{pattern}"


def _sheets_output(out_dir: Path) -> list[str]:
    """The sprite sheets as FFmpeg writes them: numbered JPEGs from 0, one per frame it is given."""
    return [
        *_JPEG,
        "-q:v",
        JPEG_QUALITY,
        "-fps_mode",
        "passthrough",
        "-start_number",
        "0",
        "-f",
        "image2",
        image_pattern(out_dir, SHEET_PATTERN),
    ]


def parse_tile_times(text: str) -> list[float]:
    """Picture times printed by ``metadata=mode=print`` (``frame:0 pts:0 pts_time:0``), in order."""
    return [
        float(m.group(1)) for m in re.finditer(r"pts_time:(\S+)", text) if m.group(1) not in ("nan", "NOPTS")
    ]


def _tile_filter(
    interval: float | None, tile_w: int, tile_h: int, times_file: Path, to_sdr: str | None = None
) -> str:
    """Key frames to tiles: the first of each grid interval (when ``interval`` is given), letterboxed into
    the tile (the probed size may be the coded one of a rotated source), its time printed to ``times_file``.
    ``to_sdr``: an HDR source's tone mapping, after the scaling (fewer pixels) and before the padding."""
    steps = []
    if interval is not None:
        iv = f"{interval:.6f}"
        steps.append(f"select=isnan(prev_selected_t)+gt(floor(t/{iv})\\,floor(prev_selected_t/{iv}))")
    steps += [
        f"scale={tile_w}:{tile_h}:force_original_aspect_ratio=decrease",
        *([to_sdr] if to_sdr else []),
        f"pad={tile_w}:{tile_h}:-1:-1",
        "setsar=1",
        f"metadata=mode=add:key={_TILE_KEY}:value=1",
        f"metadata=mode=print:file={filter_path(times_file)}",
    ]
    return ",".join(steps)


_KEY_FRAMES_ONLY = ["-skip_frame", "nokey", "-discard:v", "nokey"]
_JPEG = ["-c:v", "mjpeg", "-pix_fmt", "yuvj420p"]


def single_pass_args(
    url: str,
    duration: float,
    interval: float,
    tile_w: int,
    tile_h: int,
    columns: int,
    rows: int,
    out_dir: Path,
    times_file: Path,
    *,
    protocols: str = NETWORK_PROTOCOLS,
    to_sdr: str | None = None,
) -> list[str]:
    """One pass: the sheets (``SHEET_PATTERN`` in ``out_dir``), and a null output fed each tile, so that
    FFmpeg's progress follows the source's time tile by tile instead of sheet by sheet."""
    graph = (
        f"[0:v:0]{_tile_filter(interval, tile_w, tile_h, times_file, to_sdr)},split[s][p];"
        f"[s]tile={columns}x{rows}[sheets]"
    )
    source = input_args(url, protocols=protocols)
    # Bounded like every job's output, here on the input (it feeds two outputs): timestamps that jump far
    # ahead end the pass.
    source[-2:-2] = ["-t", f"{duration + output_slack(duration):.3f}"]
    return [
        *GLOBAL_ARGS,
        *_KEY_FRAMES_ONLY,
        *source,
        "-filter_complex",
        graph,
        "-map",
        "[sheets]",
        *_sheets_output(out_dir),
        "-map",
        "[p]",
        "-fps_mode",
        "passthrough",
        "-f",
        "null",
        "-",
    ]


def seek_tile_args(
    url: str,
    at: float,
    tile_w: int,
    tile_h: int,
    tile: Path,
    times_file: Path,
    *,
    protocols: str = NETWORK_PROTOCOLS,
    to_sdr: str | None = None,
) -> list[str]:
    """One tile: the first key frame at or after ``at`` (input seeking; times printed relative to ``at``),
    lossless (PNG) until the sheets are assembled."""
    return [
        *GLOBAL_ARGS,
        *_KEY_FRAMES_ONLY,
        *input_args(url, at, protocols=protocols),
        "-map",
        "0:v:0",
        "-frames:v",
        "1",
        "-vf",
        _tile_filter(None, tile_w, tile_h, times_file, to_sdr),
        "-c:v",
        "png",
        "-update",
        "1",
        "-f",
        "image2",
        str(tile),
    ]


def assemble_args(tiles_dir: Path, columns: int, rows: int, out_dir: Path) -> list[str]:
    """Tiles made by this job (``TILE_PATTERN``, numbered from 0) into sheets: local files read back with
    the file protocol and the image2 demuxer only."""
    return [
        *GLOBAL_ARGS,
        *whitelist(LOCAL_FILES, "image2"),
        "-f",
        "image2",
        "-framerate",
        "1",
        "-pattern_type",
        "sequence",
        "-start_number",
        "0",
        "-i",
        image_pattern(tiles_dir, TILE_PATTERN),
        "-vf",
        f"tile={columns}x{rows}",
        *_sheets_output(out_dir),
    ]


def poster_args(
    url: str, at: float, poster: Path, *, protocols: str = NETWORK_PROTOCOLS, to_sdr: str | None = None
) -> list[str]:
    """A full-size frame at ``at`` (input seeking, then decoding up to the exact frame); ``to_sdr``: an
    HDR source's tone mapping."""
    return [
        *GLOBAL_ARGS,
        *input_args(url, at, protocols=protocols),
        "-map",
        "0:v:0",
        "-frames:v",
        "1",
        *(["-vf", to_sdr] if to_sdr else []),
        *_JPEG,
        "-q:v",
        POSTER_QUALITY,
        "-update",
        "1",
        "-f",
        "image2",
        str(poster),
    ]


@dataclass(frozen=True)
class _Job:
    """One storyboard's settings, shared by its runs."""

    url: str
    duration: float
    interval: float
    size: tuple[int, int]  # tile width, height
    layout: tuple[int, int]  # sheet columns, rows
    out_dir: Path
    work: Path  # the job's own intermediate files, removed at the end
    protocols: str
    to_sdr: str | None = None  # an HDR source's tone mapping: every picture is SDR


# File work, kept out of the coroutines (small files on local disk).


def _new_work_dir(out_dir: Path) -> Path:
    out_dir.mkdir(parents=True, exist_ok=True)
    work = out_dir / ".storyboard-work"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir()
    return work


def _read_times(times_file: Path) -> list[float]:
    return parse_tile_times(times_file.read_text()) if times_file.exists() else []


def _seek_result(at: float, times_file: Path, tile: Path) -> float | None:
    """The time of the tile a seek to ``at`` made; None when there was no key frame from there on."""
    times = _read_times(times_file)
    return at + times[0] if times and tile.exists() else None


def _keep_tiles(work: Path, found: list[float | None]) -> tuple[Path, list[float]]:
    """The tiles found, numbered from 0 in ``work/tiles``; two seeks that reached the same key frame
    (sparse key frames) make one tile."""
    tiles_dir = work / "tiles"
    tiles_dir.mkdir()
    kept: list[float] = []
    for i, t in enumerate(found):
        if t is not None and (not kept or t > kept[-1]):
            (work / f"seek_{i:04d}.png").rename(tiles_dir / (TILE_PATTERN % len(kept)))
            kept.append(t)
    return tiles_dir, kept


def _sheets(out_dir: Path, tiles: int, per_sheet: int) -> list[Path]:
    """The sheets the cues point into; sheets past them (tiles past the end) are removed."""
    sprites = [out_dir / (SHEET_PATTERN % i) for i in range(math.ceil(tiles / per_sheet))]
    missing = [p.name for p in sprites if not p.exists()]
    if missing:
        raise ValueError(f"FFmpeg wrote no sprite sheet {', '.join(missing)}")
    for extra in sorted(out_dir.glob("storyboard_*.jpg"))[len(sprites) :]:
        extra.unlink()
    return sprites


async def _single_pass(job: _Job, run: Runner) -> list[float]:
    times_file = job.work / "times.txt"
    await run(
        single_pass_args(
            job.url, job.duration, job.interval, *job.size, *job.layout, job.out_dir, times_file,
            protocols=job.protocols, to_sdr=job.to_sdr,
        )
    )  # fmt: skip
    return _read_times(times_file)


async def _seek_per_tile(
    job: _Job, run: Runner, concurrency: int, on_progress: Callable[[float], None] | None
) -> list[float]:
    grid = [i * job.interval for i in range(math.ceil(job.duration / job.interval))]
    found: list[float | None] = [None] * len(grid)
    limit = asyncio.Semaphore(max(1, concurrency))
    done = 0

    async def one(i: int) -> None:
        nonlocal done
        times_file, tile = job.work / f"seek_{i:04d}.txt", job.work / f"seek_{i:04d}.png"
        async with limit:
            await run(
                seek_tile_args(
                    job.url, grid[i], *job.size, tile, times_file, protocols=job.protocols, to_sdr=job.to_sdr
                )
            )
        found[i] = _seek_result(grid[i], times_file, tile)
        done += 1
        if on_progress:
            on_progress(done / len(grid))

    await together(*(one(i) for i in range(len(grid))))  # a failed tile (or a cancelled job) stops the others
    tiles_dir, kept = _keep_tiles(job.work, found)
    if kept:
        await run(assemble_args(tiles_dir, *job.layout, job.out_dir))
    return kept


async def _poster(job: _Job, at: float, run: Runner) -> Path:
    poster = job.out_dir / POSTER
    await run(poster_args(job.url, at, poster, protocols=job.protocols, to_sdr=job.to_sdr))
    if not poster.exists() and at > 0:  # nothing decodable from there on (e.g. a short last GOP)
        await run(poster_args(job.url, 0.0, poster, protocols=job.protocols, to_sdr=job.to_sdr))
    if not poster.exists():
        raise ValueError("no video frame could be decoded for the poster")
    return poster


async def make_storyboard(
    url: str,
    info: MediaInfo,
    preset: Preset,
    out_dir: Path,
    run: Runner,
    *,
    protocols: str = NETWORK_PROTOCOLS,
    poster_time: float | None = None,
    seek: bool | None = None,
    concurrency: int = SEEK_CONCURRENCY,
    on_progress: Callable[[float], None] | None = None,
) -> StoryboardResult:
    """Write ``STORYBOARD_VTT``, the sheets (``storyboard_000.jpg`` …) and ``POSTER`` into ``out_dir``.

    ``seek``: one input seek per tile (True) or one pass (False); None chooses (:func:`seeks_per_tile`).
    With seeks, the runner sees one short run per tile (``concurrency`` at once): ``on_progress``
    receives the fraction of tiles done. ``poster_time``: seconds into the source (default
    :func:`default_poster_time`)."""
    if info.video_codec is None:
        raise ValueError("the source has no video stream to make a storyboard from")
    if not info.duration or info.duration <= 0:
        raise ValueError("the source's duration is unknown: a storyboard's cues must cover it")
    if not preset.width:
        raise ValueError(f"preset {preset.name!r} has no tile width")
    duration = info.duration
    interval = tile_interval(duration, preset)
    layout = sheet_layout(math.ceil(duration / interval), preset.tile_columns, preset.tile_rows)
    size = tile_size(info, preset.width)
    if seek is None:
        seek = seeks_per_tile(info, interval)
    at = default_poster_time(duration) if poster_time is None else min(max(0.0, poster_time), duration)

    work = _new_work_dir(out_dir)
    job = _Job(url, duration, interval, size, layout, out_dir, work, protocols, to_sdr_filter(info))
    try:
        if seek:
            times = await _seek_per_tile(job, run, concurrency, on_progress)
        else:
            times = await _single_pass(job, run)
        cues = cue_times(times, interval, duration)
        if not cues:
            raise ValueError("no video frame could be decoded for the storyboard")
        sprites = _sheets(out_dir, len(cues), layout[0] * layout[1])
        poster = await _poster(job, at, run)
    finally:
        shutil.rmtree(work, ignore_errors=True)

    vtt = out_dir / STORYBOARD_VTT
    vtt.write_text(webvtt(cues, [p.name for p in sprites], *size, *layout))
    return StoryboardResult(
        vtt=vtt,
        sprites=sprites,
        poster=poster,
        tiles=len(cues),
        interval=interval,
        tile_width=size[0],
        tile_height=size[1],
        columns=layout[0],
        rows=layout[1],
    )


def plan(ctx: JobContext) -> Work:
    out_dir = ctx.out_dir

    async def storyboard(runner: StepRunner) -> None:
        # One pass over the key frames (FFmpeg's reports follow the source), or one seek per tile
        # (each tile's end reports the share done).
        steps = runner.scoped(0.0, 95.0, expected=ctx.info.duration)

        def done(frac: float) -> None:
            steps.on_progress(95.0 * frac, ProgressReport())

        poster_at = None
        if ctx.scenes is not None and ctx.info.duration:  # kept by an earlier job: never detected here
            poster_at = poster_time(ctx.info.duration, await ctx.scenes.known() or [])
        try:
            await make_storyboard(
                ctx.url, ctx.info, ctx.preset, out_dir, steps, poster_time=poster_at, on_progress=done
            )
        except ValueError as exc:
            raise JobError(str(exc), "invalid") from None

    return Work(out_dir / STORYBOARD_VTT, None, storyboard, check_written=False)
