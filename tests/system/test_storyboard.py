"""Storyboards: the interval, tile and sheet arithmetic, the WebVTT track, and real FFmpeg runs on media made
with lavfi, checked with ffprobe (sheet and poster sizes), the track parsed back (contiguous cues covering
the source, every rectangle inside its sheet and on a picture), both ways of reaching the key frames
(one pass, one seek per tile) agreeing, and the cost of a 10-minute source against a full decode."""

from __future__ import annotations

import asyncio
import math
import re
import resource
import subprocess
import time
from pathlib import Path

import msgspec
import pytest

from mpr_common.events import MediaInfo
from mpr_common.mediainfo import probe
from mpr_common.presets import POSTER, PRESETS, STORYBOARD_VTT
from mpr_transcoder.ffmpeg import ProgressReport, run_ffmpeg
from mpr_transcoder.kinds.storyboard import (
    MAX_SHORT_INTERVAL,
    MAX_TILES,
    MIN_INTERVAL,
    SEEK_MIN_BYTES,
    TARGET_TILES,
    cue_times,
    make_storyboard,
    parse_tile_times,
    seeks_per_tile,
    sheet_layout,
    tile_interval,
    tile_size,
    webvtt,
)
from tests import media_checks
from tests.media import ffmpeg, make_audio, make_video
from tests.media_checks import decode_jpegs_gray, jpeg_size

pytestmark = pytest.mark.system

PRESET = PRESETS["storyboard-160"]


def runner(reports: list[ProgressReport] | None = None):
    async def run(args: list[str]) -> list[str]:
        return await run_ffmpeg(args, reports.append if reports is not None else lambda r: None, timeout=120)

    return run


# --- the arithmetic ------------------------------------------------------------------------------


def test_tile_interval_follows_the_duration_within_bounds():
    previous = 0.0
    for duration in [1, 5, 30, 120, 200, 600, 999, 1000, 1500, 3000, 3600, 7200, 36000, 360000]:
        interval = tile_interval(duration, PRESET)
        tiles = math.ceil(duration / interval)
        assert interval >= MIN_INTERVAL and interval == int(interval)
        assert tiles <= MAX_TILES
        if duration <= TARGET_TILES * MAX_SHORT_INTERVAL:
            assert interval <= MAX_SHORT_INTERVAL  # short sources: a tile every 2-10 s
            assert tiles >= min(TARGET_TILES, duration / MIN_INTERVAL) * 0.9
        assert interval >= previous  # never finer for a longer source
        previous = interval


def test_tile_interval_of_the_preset_is_kept_but_bounded():
    every_5s = msgspec.structs.replace(PRESET, tile_interval=5.0)
    assert tile_interval(600, every_5s) == 5.0
    ten_hours = 36000
    assert math.ceil(ten_hours / tile_interval(ten_hours, every_5s)) <= MAX_TILES


@pytest.mark.parametrize(
    "size", [(640, 360), (1920, 1080), (1080, 1920), (720, 576), (1000, 333), (4096, 1716), (3, 2000)]
)
def test_tile_size_keeps_the_aspect_with_an_even_height(size):
    w, h = size
    tw, th = tile_size(MediaInfo(video_codec="h264", width=w, height=h), 160)
    assert tw == 160 and th % 2 == 0 and th >= 2
    assert abs(th - 160 * h / w) <= 1


def test_tile_size_without_a_probed_size_is_16_9():
    assert tile_size(MediaInfo(video_codec="h264"), 160) == (160, 90)


def test_sheet_layout_shrinks_a_single_sheet_only():
    assert sheet_layout(3, 10, 10) == (3, 1)
    assert sheet_layout(10, 10, 10) == (10, 1)
    assert sheet_layout(11, 10, 10) == (10, 2)
    assert sheet_layout(100, 10, 10) == (10, 10)
    assert sheet_layout(101, 10, 10) == (10, 10)  # several sheets: all full size
    assert sheet_layout(0, 10, 10) == (1, 1)


def test_seeks_per_tile_when_many_bytes_lie_between_tiles():
    assert not seeks_per_tile(MediaInfo(video_codec="h264"), 24)  # unknown bit rate: one pass
    rate = SEEK_MIN_BYTES * 8 // 24  # bits per second that put exactly SEEK_MIN_BYTES between tiles
    assert seeks_per_tile(MediaInfo(video_codec="h264", bit_rate=rate + 8), 24)
    assert not seeks_per_tile(MediaInfo(video_codec="h264", bit_rate=rate - 8), 24)
    # 2 h at 5 Mb/s (300 tiles, 24 s apart): seek; 10 min at 5 Mb/s (6 s apart): one pass
    assert seeks_per_tile(MediaInfo(bit_rate=5_000_000), tile_interval(7200, PRESET))
    assert not seeks_per_tile(MediaInfo(bit_rate=5_000_000), tile_interval(600, PRESET))


def assert_contiguous(cues: list[tuple[float, float]], duration: float) -> None:
    assert cues[0][0] == 0.0 and cues[-1][1] == duration
    assert all(a[1] == b[0] for a, b in zip(cues, cues[1:], strict=False))
    assert all(start < end for start, end in cues)


def test_cue_times_cover_the_source_from_the_grid():
    cues = cue_times([0.04, 2.0, 4.08, 6.0], 2.0, 7.5)
    assert_contiguous(cues, 7.5)
    assert [s for s, _ in cues] == [0.0, 2.0, 4.0, 6.0]


def test_cue_times_with_sparse_key_frames_grow_over_empty_intervals():
    key_frames = [0.0, 5.0, 10.0]
    cues = cue_times(key_frames, 2.0, 12.0)
    assert_contiguous(cues, 12.0)
    assert len(cues) == 3
    for t, (start, end) in zip(key_frames, cues, strict=True):
        assert start <= t < end and start % 2.0 == 0


def test_cue_times_ignore_pictures_past_the_end():
    assert cue_times([0.0, 2.0, 4.0, 6.1], 2.0, 6.0) == [(0.0, 2.0), (2.0, 4.0), (4.0, 6.0)]
    assert cue_times([], 2.0, 6.0) == []


def test_parse_tile_times_reads_the_metadata_print_file():
    text = "frame:0    pts:0       pts_time:0\nmpr.tile=1\nframe:1    pts:76800   pts_time:6.04\nmpr.tile=1\n"
    assert parse_tile_times(text) == [0.0, 6.04]


def parse_vtt(text: str) -> list[tuple[float, float, str, tuple[int, int, int, int]]]:
    """(start, end, sheet, (x, y, w, h)) of every cue; asserts the track's shape."""

    def seconds(ts: str) -> float:
        h, m, s = ts.split(":")
        return int(h) * 3600 + int(m) * 60 + float(s)

    blocks = text.strip().split("\n\n")
    assert blocks[0] == "WEBVTT"
    cues = []
    for block in blocks[1:]:
        timing, payload = block.split("\n")
        m = re.fullmatch(r"(\d\d:\d\d:\d\d\.\d{3}) --> (\d\d:\d\d:\d\d\.\d{3})", timing)
        assert m, timing
        sheet, _, frag = payload.partition("#xywh=")
        x, y, w, h = (int(v) for v in frag.split(","))
        cues.append((seconds(m.group(1)), seconds(m.group(2)), sheet, (x, y, w, h)))
    return cues


def test_webvtt_fills_sheets_row_by_row():
    tiles = [(i * 2.0, i * 2.0 + 2) for i in range(7)]
    cues = parse_vtt(webvtt(tiles, ["a.jpg", "b.jpg"], 160, 90, 2, 2))
    assert [(c[2], c[3][:2]) for c in cues] == [
        ("a.jpg", (0, 0)),
        ("a.jpg", (160, 0)),
        ("a.jpg", (0, 90)),
        ("a.jpg", (160, 90)),
        ("b.jpg", (0, 0)),
        ("b.jpg", (160, 0)),
        ("b.jpg", (0, 90)),
    ]
    assert all(c[3][2:] == (160, 90) for c in cues)
    assert [(c[0], c[1]) for c in cues] == tiles


def test_webvtt_writes_hours_and_milliseconds():
    cue = parse_vtt(webvtt([(3723.4567, 3725.0)], ["s.jpg"], 160, 90, 1, 1))[0]
    assert cue[:2] == (3723.457, 3725.0)


def test_webvtt_needs_a_sheet_for_every_tile():
    with pytest.raises(ValueError, match="need 2 sheets"):
        webvtt([(0.0, 1.0)] * 5, ["a.jpg"], 160, 90, 2, 2)


# --- real storyboards ---------------------------------------------------------------------------


# JPEG files read as one picture each (jpeg_pipe): image2 would take a "%" in the path for a pattern.
JPEG = list(media_checks.JPEG)


def cell_means(raw: bytes, w: int, h: int, columns: int, rows: int) -> list[float]:
    """Mean luma of each cell of a sheet decoded to 8-bit luma, row by row."""
    width = w * columns
    assert len(raw) == width * h * rows
    means = []
    for r in range(rows):
        for c in range(columns):
            total = sum(
                sum(raw[(r * h + y) * width + c * w : (r * h + y) * width + (c + 1) * w]) for y in range(h)
            )
            means.append(total / (w * h))
    return means


def check_storyboard(result, info: MediaInfo, out_dir: Path) -> list:
    """What every storyboard must be; returns the parsed cues."""
    assert result.vtt == out_dir / STORYBOARD_VTT and result.poster == out_dir / POSTER
    assert sorted(p.name for p in out_dir.iterdir()) == sorted(
        [STORYBOARD_VTT, POSTER, *(p.name for p in result.sprites)]
    )  # nothing else left behind
    tw, th = result.tile_width, result.tile_height
    assert (tw, th) == tile_size(info, PRESET.width or 0)
    # the sizes the JPEGs' headers give, and every sheet and the poster decoded (one FFmpeg run)
    for sheet in result.sprites:
        assert jpeg_size(sheet) == (result.columns * tw, result.rows * th)
    assert jpeg_size(result.poster) == (info.width, info.height)
    *sheets, poster = decode_jpegs_gray([*result.sprites, result.poster])
    assert len(poster) == (info.width or 0) * (info.height or 0)

    cues = parse_vtt(result.vtt.read_text())
    assert len(cues) == result.tiles
    assert_contiguous([(c[0], c[1]) for c in cues], round(info.duration or 0, 3))
    names = [p.name for p in result.sprites]
    for _, _, sheet, (x, y, w, h) in cues:
        assert sheet in names
        assert (w, h) == (tw, th)
        assert 0 <= x and x + w <= result.columns * tw and 0 <= y and y + h <= result.rows * th
    # every rectangle a cue points at holds a picture, every other cell is black padding
    per_sheet = result.columns * result.rows
    for i, raw in enumerate(sheets):
        means = cell_means(raw, tw, th, result.columns, result.rows)
        used = min(per_sheet, result.tiles - i * per_sheet)
        assert all(m > 40 for m in means[:used]), means
        assert all(m < 8 for m in means[used:]), means
    return cues


def children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def psnrs(pairs: list[tuple[Path, Path]]) -> list[float]:
    """How alike the pictures of each pair are (dB; inf: identical), one FFmpeg run for all pairs."""
    inputs = [arg for pair in pairs for path in pair for arg in (*JPEG, "-i", str(path))]
    graph = ";".join(f"[{2 * i}:v][{2 * i + 1}:v]psnr" for i in range(len(pairs)))
    err = subprocess.run(
        ["ffmpeg", "-nostdin", "-hide_banner", *inputs, "-lavfi", graph, "-f", "null", "-"],
        capture_output=True,
        text=True,
    ).stderr
    values = dict(re.findall(r"\[Parsed_psnr_(\d+) @ \S+\] PSNR .*average:(\S+)", err))
    assert len(values) == len(pairs), err
    return [float(values[str(i)]) for i in range(len(pairs))]


@pytest.fixture(scope="module")
def clip(tmp_path_factory) -> tuple[str, MediaInfo]:
    path = make_video(
        tmp_path_factory.mktemp("media") / "clip.mp4", seconds=12, size="640x360"
    )  # a key frame a second
    return str(path), asyncio.run(probe(str(path), protocols="file"))


@pytest.mark.parametrize("seek", [False, True], ids=["one-pass", "seek-per-tile"])
async def test_storyboard_of_a_clip(clip, tmp_path, seek):
    url, info = clip
    reports: list[ProgressReport] = []
    fractions: list[float] = []
    result = await make_storyboard(
        url,
        info,
        PRESET,
        tmp_path,
        runner(reports),
        protocols="file",
        seek=seek,
        on_progress=fractions.append,
    )
    interval = tile_interval(info.duration or 0, PRESET)
    assert result.interval == interval
    assert result.tiles == math.ceil((info.duration or 0) / interval)  # a key frame in every interval
    assert (result.columns, result.rows) == (result.tiles, 1)  # one sheet: no empty row
    cues = check_storyboard(result, info, tmp_path)
    assert [c[0] for c in cues] == [i * interval for i in range(result.tiles)]
    if seek:
        assert fractions == sorted(fractions) and fractions[-1] == 1.0
    else:  # FFmpeg's progress follows the source tile by tile (the null output), not sheet by sheet
        times = [r.out_time for r in reports if r.out_time is not None]
        assert max(times) >= cues[-1][0]


async def test_both_ways_pick_the_same_pictures(clip, tmp_path):
    url, info = clip
    small = msgspec.structs.replace(PRESET, tile_columns=2, tile_rows=2)  # 6 tiles: 2 sheets, 2 cells padded
    one = await make_storyboard(url, info, small, tmp_path / "one", runner(), protocols="file", seek=False)
    per_tile = await make_storyboard(
        url, info, small, tmp_path / "seek", runner(), protocols="file", seek=True
    )
    assert len(one.sprites) == 2 and (one.columns, one.rows) == (2, 2)
    check_storyboard(one, info, tmp_path / "one")
    check_storyboard(per_tile, info, tmp_path / "seek")
    assert one.vtt.read_text() == per_tile.vtt.read_text()
    alike = psnrs(list(zip(one.sprites, per_tile.sprites, strict=True)))
    assert all(v > 35 for v in alike), alike


async def test_sparse_key_frames_give_fewer_longer_cues(tmp_path):
    src = tmp_path / "sparse.mp4"
    ffmpeg(
        "-f", "lavfi", "-i", "testsrc2=size=320x240:rate=25:duration=12",
        "-c:v", "libx264", "-preset", "ultrafast", "-g", "125", "-sc_threshold", "0", "-pix_fmt", "yuv420p", str(src),
    )  # fmt: skip
    info = await probe(str(src), protocols="file")
    key_frames = [0.0, 5.0, 10.0]
    for seek in (False, True):
        out = tmp_path / f"seek-{seek}"
        result = await make_storyboard(str(src), info, PRESET, out, runner(), protocols="file", seek=seek)
        assert result.interval == MIN_INTERVAL and result.tiles == len(key_frames)
        cues = check_storyboard(result, info, out)
        for t, (start, end, _, _) in zip(key_frames, cues, strict=True):
            assert start <= t < end


@pytest.mark.parametrize("seek", [False, True], ids=["one-pass", "seek-per-tile"])
async def test_a_path_that_needs_escaping(clip, tmp_path, seek):
    url, info = clip
    out = tmp_path / "a:b,c'd [e];f\\g %03d *"  # filter graph, option and image2 pattern syntax
    result = await make_storyboard(url, info, PRESET, out, runner(), protocols="file", seek=seek)
    check_storyboard(result, info, out)


async def test_poster_time_is_kept_inside_the_source(clip, tmp_path):
    url, info = clip
    result = await make_storyboard(url, info, PRESET, tmp_path, runner(), protocols="file", poster_time=1e6)
    assert jpeg_size(result.poster) == (info.width, info.height)


async def test_a_source_without_video_fails_clearly(tmp_path):
    wav = make_audio(tmp_path / "a.wav")
    info = await probe(str(wav), protocols="file")
    with pytest.raises(ValueError, match="the source has no video stream"):
        await make_storyboard(str(wav), info, PRESET, tmp_path / "out", runner(), protocols="file")


async def test_a_long_source_costs_a_fraction_of_a_decode(tmp_path):
    ten = tmp_path / "ten.mp4"
    ffmpeg(
        "-f", "lavfi", "-i", "testsrc2=size=320x180:rate=25:duration=10",
        "-c:v", "libx264", "-preset", "ultrafast", "-g", "50", "-pix_fmt", "yuv420p", str(ten),
    )  # fmt: skip
    # 600 s (15,000 frames, a key frame every 2 s) by copying the 10 s sixty times: encoding them costs
    # more than the storyboard and the decode measured here together
    src = tmp_path / "long.mp4"
    ffmpeg("-stream_loop", "59", "-i", str(ten), "-c", "copy", str(src))
    info = await probe(str(src), protocols="file")
    # CPU time of the FFmpeg children: what the job costs, and steadier than wall time on a busy machine
    t0, cpu0 = time.perf_counter(), children_cpu()
    result = await make_storyboard(str(src), info, PRESET, tmp_path / "out", runner(), protocols="file")
    storyboard, storyboard_cpu = time.perf_counter() - t0, children_cpu() - cpu0
    # one decoding thread: the cheapest full decode (threads cost CPU to coordinate), the harder bound
    t0, cpu0 = time.perf_counter(), children_cpu()
    scale = f"scale={result.tile_width}:{result.tile_height}"
    ffmpeg("-threads", "1", "-i", str(src), "-vf", scale, "-f", "null", "-")
    decode, decode_cpu = time.perf_counter() - t0, children_cpu() - cpu0
    print(
        f"\n600 s source, {result.tiles} tiles: storyboard {storyboard:.2f} s ({storyboard_cpu:.2f} s CPU), "
        f"full decode {decode:.2f} s ({decode_cpu:.2f} s CPU)"
    )
    assert result.tiles == math.ceil(600 / result.interval) and len(result.sprites) == 1
    check_storyboard(result, info, tmp_path / "out")
    assert storyboard_cpu < 0.4 * decode_cpu
