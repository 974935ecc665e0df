"""Chunked renditions with real FFmpeg on lavfi media: a rung of the real ``abr-h264`` preset encoded
whole and as chunks (cut where the source has no key frame: its GOP is 2.5 s, open, with B-frames),
the chunks placed, stitched and listed, then checked with ffprobe as one rendition: the source's frame
count, one frame duration between consecutive frames across every join, a key frame at every segment
boundary, one init segment for all chunks, the sound's length, and the same quality as the whole
encode. At 25 fps and at 30000/1001 fps (whose frames are not on the chunks' whole seconds)."""

from __future__ import annotations

import asyncio
import json
import re
import struct
import subprocess
from concurrent.futures import ThreadPoolExecutor
from fractions import Fraction
from pathlib import Path

import pytest

from mpr_common.events import ChunkSpan, MediaInfo, Rendition
from mpr_common.mediainfo import probe
from mpr_common.presets import AUDIO_RENDITION, PRESETS
from mpr_transcoder.ffmpeg.argv import input_args, local_input
from mpr_transcoder.kinds.rendition import cmaf
from mpr_transcoder.kinds.rendition.chunks import finish_chunk, media_playlist, plan_chunks, stitch
from tests.media import ffmpeg

pytestmark = pytest.mark.system

PRESET = PRESETS["abr-h264"]
RUNG = PRESET.ladder[-1]  # 360p; never upscaled, so it keeps the small source's size


def make_source(path: Path, rate: str, seconds: int, size: str, *, audio: bool) -> Path:
    """H.264 with key frames every 2.5 s only, open GOPs and B-frames: chunk starts that are not key
    frames, and frames decoded from references before the cut."""
    sound = ["-f", "lavfi", "-i", f"sine=frequency=440:sample_rate=48000:duration={seconds}"] if audio else []
    ffmpeg(
        *["-f", "lavfi", "-i", f"testsrc2=size={size}:rate={rate}:duration={seconds}", *sound],
        *["-c:v", "libx264", "-preset", "ultrafast", "-bf", "3", "-pix_fmt", "yuv420p"],
        *[
            "-x264-params",
            "keyint=300:scenecut=0:open-gop=1",
            "-force_key_frames",
            "expr:gte(t,n_forced*2.5)",
        ],
        *(["-c:a", "aac", "-shortest"] if audio else []),
        str(path),
    )
    return path


def run_all(commands: list[list[str]]) -> None:
    """As on two transcoders: two FFmpeg runs at a time."""

    def one(args: list[str]) -> None:
        subprocess.run(args, check=True, stdout=subprocess.DEVNULL)

    with ThreadPoolExecutor(2) as pool:
        list(pool.map(one, commands))


def ffprobe_json(*args: str) -> dict:
    out = subprocess.run(["ffprobe", "-v", "error", *args, "-of", "json"], check=True, capture_output=True)
    return json.loads(out.stdout)


def joined(out: Path, r: Rendition) -> Path:
    """The rendition's init segment followed by its media segments: one fragmented MP4 file."""
    names = [r.media_pattern % (r.start_number + i) for i in range(len(r.segments))]
    path = out / f"joined-{r.name}.mp4"
    path.write_bytes((out / r.init).read_bytes() + b"".join((out / n).read_bytes() for n in names))
    return path


def packets(path: Path) -> tuple[list[int], list[bool], Fraction]:
    """Presentation times (in the stream's time base, in order) and key flags of the video packets."""
    data = ffprobe_json(
        "-select_streams", "v:0", "-show_entries", "packet=pts,flags:stream=time_base", str(path)
    )
    pts = sorted((int(p["pts"]), "K" in p["flags"]) for p in data["packets"])
    return [p for p, _ in pts], [k for _, k in pts], Fraction(data["streams"][0]["time_base"])


def fragment_headers(out: Path, r: Rendition) -> list[tuple[int, int]]:
    """(mfhd sequence number, tfdt decode time) of each media segment."""
    headers = []
    for i in range(len(r.segments)):
        data = (out / (r.media_pattern % (r.start_number + i))).read_bytes()
        moof = next((s, e) for kind, s, e in cmaf.iter_boxes(data) if kind == "moof")
        fields = {kind: s for kind, s, _ in cmaf.iter_boxes(data, *moof)}
        traf = next((s, e) for kind, s, e in cmaf.iter_boxes(data, *moof) if kind == "traf")
        tfdt = next(s for kind, s, _ in cmaf.iter_boxes(data, *traf) if kind == "tfdt")
        seq = struct.unpack_from(">I", data, fields["mfhd"] + 4)[0]
        headers.append((seq, struct.unpack_from(">Q" if data[tfdt] else ">I", data, tfdt + 4)[0]))
    return headers


def psnrs(paths: list[Path], source: Path) -> list[float]:
    """The average PSNR of each of ``paths`` against ``source``: one FFmpeg run, the source decoded once."""
    n = len(paths)
    refs = "".join(f"[ref{i}]" for i in range(n))
    graph = ";".join([f"[{n}:v:0]split={n}{refs}", *(f"[{i}:v][ref{i}]psnr" for i in range(n))])
    out = subprocess.run(
        ["ffmpeg", "-nostdin", "-hide_banner", *(a for p in [*paths, source] for a in ("-i", str(p)))]
        + ["-lavfi", graph, "-f", "null", "-"],
        check=True,
        capture_output=True,
        text=True,
    ).stderr
    found = re.findall(r"\[Parsed_psnr_(\d+) @ \S+\] PSNR .* average:([0-9.]+)", out)
    assert len(found) == n, out
    return [float(v) for _, v in sorted(found, key=lambda f: int(f[0]))]  # in the graph's order


def encode_chunked(
    source: Path, info: MediaInfo, out: Path, chunks: list[ChunkSpan]
) -> tuple[Rendition, list[Rendition]]:
    # each chunk in a folder of its own, as on its own transcoder; then all in the package's folder
    commands = []
    for c in chunks:
        (out / f"c{c.index}").mkdir()
        source_args = input_args(str(source), c.start, end=c.end, protocols="file")
        commands.append(cmaf.chunk_rendition_args(source_args, PRESET, RUNG, info, out / f"c{c.index}", c))
    parts = []
    run_all(commands)
    for c in chunks:
        d = out / f"c{c.index}"
        parts.append(finish_chunk(d, RUNG.name, RUNG, c))
        assert (d / cmaf.init_name(RUNG.name)).exists() == (c.index == 0)  # one init to upload
        for f in d.iterdir():
            assert not (out / f.name).exists(), f"{f.name} written by two chunks"
            f.rename(out / f.name)
    whole = stitch(parts)
    (out / whole.playlist).write_text(media_playlist(whole, ended=True))
    return whole, parts


CASES = {
    # 4 s segments: chunks [0, 4), [4, 12), [12, 15]: 6 s rounds up to two segments
    "25fps": ("25", 15, "320x180", 6.0, True),
    # chunks from 4, 12 and 20 s: 0.12, 0.36 and 0.6 of a frame before the chunk's first frame
    "30000/1001fps": ("30000/1001", 23, "160x90", 8.0, False),
}


@pytest.mark.parametrize("case", list(CASES))
def test_chunked_rung_is_the_whole_rung(case: str, tmp_path: Path) -> None:
    rate, seconds, size, chunk_seconds, audio = CASES[case]
    source = make_source(tmp_path / "source.mp4", rate, seconds, size, audio=audio)
    info = asyncio.run(probe(str(source), protocols="file"))
    assert info.duration is not None
    chunks = plan_chunks(info.duration, PRESET, chunk_seconds)
    assert [c.first_segment for c in chunks] == ([0, 1, 3] if audio else [0, 1, 3, 5])
    whole_dir, chunked_dir = tmp_path / "whole", tmp_path / "chunked"
    whole_dir.mkdir()
    chunked_dir.mkdir()
    commands = [cmaf.rendition_args(local_input(source), PRESET, RUNG, info, whole_dir)]
    if audio:
        commands.append(cmaf.rendition_args(local_input(source), PRESET, None, info, whole_dir))
    run_all(commands)
    whole = cmaf.describe_rendition(whole_dir, RUNG.name, RUNG)
    stitched, parts = encode_chunked(source, info, chunked_dir, chunks)

    # one init segment for every chunk, the very one of the whole encode
    digests = {p.init_digest for p in parts}
    assert len(digests) == 1
    assert (chunked_dir / stitched.init).read_bytes() == (whole_dir / whole.init).read_bytes()
    # each segment where the whole encode has it: the same sequence number and decode time
    assert fragment_headers(chunked_dir, stitched) == fragment_headers(whole_dir, whole)
    assert stitched.segments == pytest.approx(whole.segments, abs=1e-6)
    # the stitched playlist lists the stitched segments
    assert cmaf.parse_media_playlist((chunked_dir / stitched.playlist).read_text()).segments == [
        (stitched.media_pattern % (stitched.start_number + i), d) for i, d in enumerate(stitched.segments)
    ]
    assert stitched.start_number == 0 and len(stitched.segments) == len(whole.segments)
    assert sum(stitched.segments) == pytest.approx(sum(whole.segments), abs=1e-3)

    # every frame of the source once, one frame duration apart across the joins
    frames = int(
        ffprobe_json(
            "-count_packets", "-select_streams", "v:0", "-show_entries", "stream=nb_read_packets", str(source)
        )["streams"][0]["nb_read_packets"]
    )
    for path in (joined(chunked_dir, stitched), chunked_dir / stitched.playlist):
        pts, keys, tb = packets(path)
        assert len(pts) == frames, path.name
        steps = {b - a for a, b in zip(pts, pts[1:], strict=False)}
        assert len(steps) == 1, f"{path.name}: frame steps {sorted(steps)}"
    assert pts[0] * tb == 0
    step = steps.pop() * tb
    assert step == 1 / Fraction(rate)
    # a key frame opens every segment
    starts, t = [], Fraction(0)
    for d in stitched.segments:
        starts.append(t)
        t += Fraction(d).limit_denominator(1000)
    key_times = [p * tb for p, k in zip(pts, keys, strict=True) if k]
    for s in starts:
        assert any(abs(k - s) < step / 2 for k in key_times), f"no key frame at {float(s)} s"

    # quality: the joins cost nothing measurable
    chunked_psnr, whole_psnr = psnrs([joined(chunked_dir, stitched), joined(whole_dir, whole)], source)
    assert chunked_psnr == pytest.approx(whole_psnr, abs=0.2)
    if audio:  # the sound (never chunked) ends with the stitched picture, within a frame
        sound = cmaf.describe_rendition(whole_dir, AUDIO_RENDITION, None)
        assert abs(sum(sound.segments) - float(len(pts) * step)) <= float(step)
