"""Frame-accurate trims (mpr_transcoder.smart_cut) on real FFmpeg with media made by lavfi: durations,
frame counts and clean decoding checked with ffprobe/ffmpeg; the copied GOPs are the source's own
packets (byte for byte), so a cut that re-encoded everything fails; the fallbacks keep the accuracy."""

from __future__ import annotations

import asyncio
import functools
import json
import subprocess
from fractions import Fraction
from pathlib import Path

import pytest

from mpr_common.events import MediaInfo
from mpr_common.mediainfo import probe
from mpr_transcoder.ffmpeg import run_ffmpeg
from mpr_transcoder.kinds.trim import smart_cut
from mpr_transcoder.kinds.trim.codecs import container_for, matching_encoder, sound_encoder
from mpr_transcoder.kinds.trim.planning import (
    BASE,
    TrimRangeError,
    VideoPacket,
    check_range,
    parse_local_copy,
    parse_rotation,
    plan_cut,
)
from mpr_transcoder.kinds.trim.smart_cut import smart_trim
from tests.media import ffmpeg
from tests.media_checks import decode_report

pytestmark = pytest.mark.system

FPS = 25
FRAME = 1 / FPS


def _source(path: Path, seconds: int, video: list[str], audio: list[str], size: str = "160x120") -> Path:
    ffmpeg(
        *("-f", "lavfi", "-i", f"testsrc2=size={size}:rate={FPS}:duration={seconds}"),
        *("-f", "lavfi", "-i", f"sine=frequency=440:sample_rate=48000:duration={seconds}"),
        *video,
        *audio,
        "-shortest",
        str(path),
    )
    return path


# GOPs of 2 s at 25 fps, key frames on the 2 s marks only (no scene-cut ones), B-frames (preset fast).
H264 = ["-c:v", "libx264", "-preset", "fast", "-g", "50", "-keyint_min", "50", "-sc_threshold", "0"]
H264 += ["-pix_fmt", "yuv420p"]
X265 = ["-c:v", "libx265", "-preset", "fast", "-pix_fmt", "yuv420p", "-tag:v", "hvc1"]
AAC = ["-c:a", "aac", "-b:a", "96k"]


@pytest.fixture(scope="module")
def media(tmp_path_factory) -> dict[str, tuple[Path, MediaInfo]]:
    d = tmp_path_factory.mktemp("smart-cut")
    paths = {
        "h264": _source(d / "h264.mp4", 12, H264, AAC),
        "hevc": _source(
            d / "hevc.mp4",
            8,
            [*X265, "-x265-params", "log-level=error:keyint=50:min-keyint=50:no-open-gop=1"],
            AAC,
        ),
        # x265's default: open GOPs (CRA key frames followed by pictures shown before them)
        "hevc-open": _source(
            d / "hevc-open.mp4", 6, [*X265, "-x265-params", "log-level=error:keyint=50"], AAC
        ),
        "vp9": _source(
            d / "vp9.webm",
            6,
            ["-c:v", "libvpx-vp9", "-deadline", "realtime", "-cpu-used", "8", "-g", "50"],
            ["-c:a", "libopus"],
        ),
    }
    return {k: (p, asyncio.run(probe(str(p), protocols="file"))) for k, p in paths.items()}


class Runs:
    """The runner a job hands smart_trim, recording each argv."""

    def __init__(self) -> None:
        self.calls: list[list[str]] = []

    async def __call__(self, args: list[str]) -> list[str]:
        self.calls.append(args)
        return await run_ffmpeg(args, lambda r: None, timeout=120)


def ffprobe_json(path: Path, *args: str) -> dict:
    out = subprocess.run(
        ["ffprobe", "-v", "error", *args, "-of", "json", str(path)], check=True, capture_output=True
    )
    return json.loads(out.stdout)


def video_packets(path: Path) -> list[dict]:
    """The picture's packets: pts_time, flags, data_hash (MD5 of the bytes)."""
    entries = ["-show_entries", "packet=pts_time,flags,data_hash"]
    return ffprobe_json(path, "-select_streams", "v:0", "-show_data_hash", "md5", *entries)["packets"]


# the module's sources never change: their packets are listed once
source_packets = functools.cache(video_packets)


def decoded_frames(path: Path) -> int:
    """Decodes without an error (one FFmpeg run): the pictures decoded."""
    errors, report = decode_report(path)
    assert errors == ""
    return int(report["frame"])


def check_output(path: Path, seconds: float, codec: str) -> dict:
    """Decodes without an error, holds the frames of ``seconds``, lasts ``seconds`` within one frame: one
    ffprobe that decodes every frame (``-count_frames``, its decoders' errors on stderr) and reads the
    container's and the streams' facts (an FFmpeg launch costs about 0.1 s of CPU before any work)."""
    out = subprocess.run(
        [
            "ffprobe",
            "-v",
            "error",
            "-count_frames",
            "-show_format",
            "-show_streams",
            "-of",
            "json",
            str(path),
        ],
        check=True,
        capture_output=True,
        text=True,
    )
    assert out.stderr == ""
    info = json.loads(out.stdout)
    video = next(s for s in info["streams"] if s["codec_type"] == "video")
    assert video["codec_name"] == codec
    frames = int(video["nb_read_frames"])
    assert abs(frames * FRAME - seconds) < FRAME + 1e-6
    fmt = info["format"]
    assert abs(float(fmt["duration"]) - seconds) < FRAME + 1e-6
    assert float(fmt.get("start_time", 0)) == pytest.approx(0, abs=FRAME)
    return {"frames": frames, "info": info}


def moov_before_mdat(path: Path) -> bool:
    data = path.read_bytes()
    return 0 <= data.find(b"moov") < data.find(b"mdat")


async def trim(media, kind: str, start, end, out: Path) -> tuple[smart_cut.TrimResult, Runs]:
    src, info = media[kind]
    runs = Runs()
    result = await smart_trim(
        str(src),
        info,
        start,
        end,
        out.parent / f"work-{out.stem}",
        out,
        runs,
        protocols="file",
        name=f"src/{kind}",
    )
    for args in runs.calls:  # every step reports its progress to the job
        assert args[args.index("-progress") + 1] == "pipe:1"
    return result, runs


@pytest.fixture(scope="module")
def cuts(tmp_path_factory) -> tuple[Path, dict]:
    """Cuts already made (their files only read by the tests): a test that checks other facts of the
    same cut of the same source reads it instead of cutting again."""
    return tmp_path_factory.mktemp("cuts"), {}


async def cut_once(media, cuts, kind: str, start, end) -> tuple[smart_cut.TrimResult, Runs, Path]:
    """:func:`trim` to an MP4, made once per source and range in the module."""
    folder, made = cuts
    if (kind, start, end) not in made:
        out = folder / f"{kind}-{start}-{end}.mp4"
        made[kind, start, end] = (*await trim(media, kind, start, end, out), out)
    return made[kind, start, end]


def shared_hashes(source: Path, out: Path) -> set[str]:
    return {p["data_hash"] for p in source_packets(source)} & {p["data_hash"] for p in video_packets(out)}


# --- on real media --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("start", "end", "mode", "seconds"),
    [
        (3.3, 9.7, "smart", 6.4),  # both edges mid-GOP
        (4.0, 8.0, "copy", 4.0),  # both on key frames: nothing re-encoded
        (4.5, 5.5, "reencode", 1.0),  # inside one GOP: no whole GOP to copy
        (None, 5.3, "smart", 5.3),  # from the source's start
        (7.1, 100.0, "smart", 12 - 7.1),  # the end past the source's: cut at its end
    ],
)
async def test_h264_trims_last_end_minus_start(media, cuts, start, end, mode, seconds):
    result, runs, out = await cut_once(media, cuts, "h264", start, end)
    assert result.mode == mode
    check_output(out, seconds, "h264")
    assert result.duration == pytest.approx(seconds, abs=FRAME)
    assert moov_before_mdat(out)
    # one read of the source; every later step reads the job's own files
    assert sum(str(media["h264"][0]) in args for args in runs.calls) == 1


async def test_smart_cut_copies_the_whole_gops_byte_for_byte(media, cuts):
    result, _, out = await cut_once(media, cuts, "h264", 3.3, 9.7)  # the first trim test's cut
    assert result.mode == "smart"
    src = media["h264"][0]
    source = source_packets(src)
    copied = shared_hashes(src, out)
    # GOPs 4-6 and 6-8 lie inside the range: their 98 frames that are not key frames (key frames carry
    # their parameter sets in front) are the source's packets; the edges' frames are not.
    middle = {p["data_hash"] for p in source if 4 <= float(p["pts_time"]) < 8 and "K" not in p["flags"]}
    edges = {p["data_hash"] for p in source if not 4 <= float(p["pts_time"]) < 8}
    assert len(middle) == 98 and middle <= copied
    assert not edges & copied


async def test_hevc_smart_cut(media, tmp_path):
    out = tmp_path / "out.mp4"
    result, _ = await trim(media, "hevc", 1.3, 6.7, out)
    assert result.mode == "smart"
    check_output(out, 5.4, "hevc")
    assert len(shared_hashes(media["hevc"][0], out)) >= 98  # the GOPs 2-4 and 4-6, bar their key frames


async def test_open_gops_are_reencoded_with_the_source_codec(media, tmp_path):
    out = tmp_path / "out.mp4"
    result, _ = await trim(media, "hevc-open", 1.3, 4.7, out)
    assert result.mode == "reencode"
    check_output(out, 3.4, "hevc")
    assert not shared_hashes(media["hevc-open"][0], out)


async def test_vp9_webm_falls_back_to_a_full_reencode(media, tmp_path):
    out = tmp_path / "out.webm"
    result, runs = await trim(media, "vp9", 1.3, 4.7, out)
    assert result.mode == "reencode" and len(runs.calls) == 1
    assert decoded_frames(out) == 85
    assert result.duration == pytest.approx(3.4, abs=FRAME)


async def test_h264_to_webm_is_reencoded_to_vp9_and_opus(media, tmp_path):
    out = tmp_path / "out.webm"
    result, _ = await trim(media, "h264", 10.3, 11.5, out)
    streams = ffprobe_json(out, "-count_frames", "-show_streams")["streams"]
    assert result.mode == "reencode" and {s["codec_name"] for s in streams} == {"vp9", "opus"}
    assert next(int(s["nb_read_frames"]) for s in streams if s["codec_type"] == "video") == 30


@pytest.mark.parametrize("suffix", [".mkv", ".mov", ".ts"])
async def test_other_containers_keep_the_smart_cut(media, tmp_path, suffix):
    out = tmp_path / f"out{suffix}"
    result, _ = await trim(media, "h264", 3.3, 9.7, out)
    assert result.mode == "smart"
    assert decoded_frames(out) == 160


async def test_sound_only_output_copies_packets(media, tmp_path):
    out = tmp_path / "out.m4a"
    result, _ = await trim(media, "h264", 3.3, 9.7, out)
    streams = ffprobe_json(out, "-show_streams")["streams"]
    assert result.mode == "copy" and [s["codec_type"] for s in streams] == ["audio"]
    assert abs(float(streams[0]["duration"]) - 6.4) <= 1024 / 48000  # one AAC frame


async def test_the_rotation_is_kept(media, tmp_path):
    turned = tmp_path / "turned.mp4"  # a phone's portrait video: the picture turned by the player
    ffmpeg("-i", str(media["h264"][0]), "-c", "copy", "-metadata:s:v:0", "rotate=90", str(turned))
    info = await probe(str(turned), protocols="file")
    out = tmp_path / "out.mp4"
    result = await smart_trim(str(turned), info, 3.3, 6.7, tmp_path / "w", out, Runs(), protocols="file")
    side = ffprobe_json(out, "-select_streams", "v:0", "-show_entries", "stream_side_data=rotation")
    assert result.mode == "smart" and side["streams"][0]["side_data_list"][0]["rotation"] == 90


async def test_a_range_beyond_the_source_fails_before_ffmpeg_runs(media, tmp_path):
    _, info = media["hevc"]  # an 8 s source
    runs = Runs()
    with pytest.raises(TrimRangeError, match=r"start 100\.000s is beyond the source's end \(8\.000s\)"):
        await smart_trim(
            str(media["hevc"][0]), info, 100, 110, tmp_path, tmp_path / "o.mp4", runs, protocols="file"
        )
    assert runs.calls == []


# --- pure parts -----------------------------------------------------------------------------------------


def test_check_range_clips_the_end_and_refuses_ranges_outside():
    info = MediaInfo(duration=8.0)
    assert check_range(info, 2, 100) == (2.0, 8.0)
    assert check_range(info, None, None) == (0.0, 8.0)
    assert check_range(MediaInfo(), 5, None)[1] == float("inf")
    with pytest.raises(TrimRangeError, match="beyond the source's end"):
        check_range(info, 8.0, 9.0)
    with pytest.raises(TrimRangeError, match="after start"):
        check_range(info, 3, 2)


def _gops(n_gops: int, gop: int, open_gop: bool = False) -> list[VideoPacket]:
    """Packets in decode order of GOPs "I P B B P B B ..." (frames of 1/25 s, decoded 2 frames before
    they are shown). Open GOPs: the last two frames of a GOP are decoded after the next key frame."""
    gops = []
    for g in range(n_gops):
        b = g * gop
        order = [b] + [i for k in range(3, gop, 3) for i in (b + k, b + k - 2, b + k - 1)]
        gops.append(order + [i for i in range(b, b + gop) if i not in order])
    if open_gop:
        for g in range(1, n_gops):
            moved = [g * gop - 2, g * gop - 1]
            gops[g - 1] = [i for i in gops[g - 1] if i not in moved]
            gops[g] = [gops[g][0], *moved, *gops[g][1:]]
    f = Fraction(1, FPS)
    decode = [(i, k == 0) for order in gops for k, i in enumerate(order)]
    return [VideoPacket(BASE + i * f, BASE + (n - 2) * f, key) for n, (i, key) in enumerate(decode)]


def test_plan_cut_copies_the_whole_gops_and_reencodes_the_edges():
    packets = _gops(6, 50)  # 12 s
    plan = plan_cut(packets, Fraction(33, 10) + BASE, Fraction(97, 10) + BASE)
    assert plan.mode == "smart"
    assert len(plan.frames) == 160 and plan.frames[0] == Fraction(332, 100) + BASE
    assert len(plan.head) == 17 and len(plan.tail) == 43  # 3.32-3.96 and 8.00-9.68
    assert packets[plan.copy_from].pts == 4 + BASE and plan.copy_count == 100
    assert plan.tail_key == 8 + BASE
    assert plan.head_dts_shift >= Fraction(2, FPS)  # the copied frames' decode delay


def test_plan_cut_on_key_frames_copies_only():
    plan = plan_cut(_gops(6, 50), Fraction(4 + BASE), Fraction(8 + BASE))
    assert plan.mode == "copy" and not plan.head and not plan.tail and plan.copy_count == 100


def test_plan_cut_to_the_end_copies_the_last_gop():
    plan = plan_cut(_gops(6, 50), Fraction(3 + BASE), Fraction(50 + BASE))
    assert plan.mode == "smart" and plan.tail == () and plan.copy_count == 200 and plan.tail_key is None


def test_plan_cut_inside_one_gop_or_open_gops_reencodes():
    assert plan_cut(_gops(6, 50), Fraction(45, 10) + BASE, Fraction(55, 10) + BASE).mode == "reencode"
    open_gops = _gops(6, 50, open_gop=True)
    plan = plan_cut(open_gops, Fraction(33, 10) + BASE, Fraction(97, 10) + BASE)
    assert plan.mode == "reencode" and len(plan.frames) == 160


def test_plan_cut_refuses_a_range_without_a_frame():
    with pytest.raises(TrimRangeError, match="range 30.000s to 31.000s of src/a.mp4 holds no video frame"):
        plan_cut(_gops(2, 50), Fraction(30) + BASE, Fraction(31) + BASE, "src/a.mp4")
    # shorter than a frame: the frame on screen at the start
    plan = plan_cut(_gops(2, 50), Fraction(301, 100) + BASE, Fraction(302, 100) + BASE)
    assert plan.frames == (Fraction(3) + BASE,) and plan.frame_end == Fraction(304, 100) + BASE


def test_matching_encoder_follows_the_source():
    stream = {"codec_name": "h264", "profile": "High", "level": 31, "pix_fmt": "yuv420p"}
    args = matching_encoder({**stream, "color_primaries": "bt709", "color_range": "tv"})
    assert args is not None
    assert args[args.index("-c:v") + 1] == "libx264" and args[args.index("-profile:v") + 1] == "high"
    assert args[args.index("-level:v") + 1] == "3.1" and args[args.index("-bf") + 1] == "0"
    assert ["-color_primaries", "bt709"] == args[args.index("-color_primaries") :][:2]
    hevc = matching_encoder(
        {"codec_name": "hevc", "profile": "Main 10", "level": 93, "pix_fmt": "yuv420p10le"}
    )
    assert hevc is not None and "level-idc=3.1" in hevc[hevc.index("-x265-params") + 1]
    assert matching_encoder({**stream, "field_order": "tt"}) is None  # interlaced
    assert matching_encoder({**stream, "profile": "Extended"}) is None
    assert matching_encoder({"codec_name": "vp9", "pix_fmt": "yuv420p"}) is None


def test_sound_is_copied_unless_lossless_or_foreign_to_the_container():
    mp4, flac = container_for(Path("o.mp4")), container_for(Path("o.flac"))
    assert sound_encoder("aac", mp4) is None
    assert sound_encoder("vorbis", mp4) == mp4.audio_encoder
    assert sound_encoder("flac", flac) == ["-c:a", "flac"]  # lossless: re-encoded to the sample


def test_containers_by_suffix():
    assert container_for(Path("a/b.MP4")).faststart
    assert container_for(Path("x.webm")).video_copy == frozenset()
    assert container_for(Path("x.m4a")).video_encoder is None
    with pytest.raises(ValueError, match=r"\.xyz"):
        container_for(Path("x.xyz"))


def test_parse_local_copy_and_rotation():
    text = "\n".join(
        [
            "packet|stream_index=1|pts=480000|dts=480000|flags=K_",
            "packet|stream_index=0|pts=512000|dts=N/A|flags=K_",
            "packet|stream_index=0|pts=N/A|dts=1|flags=__",
            "stream|index=0|codec_name=h264|profile=High|codec_type=video|pix_fmt=yuv420p|time_base=1/51200",
            "stream|index=1|codec_name=aac|profile=LC|codec_type=audio|time_base=1/48000",
        ]
    )
    copy = parse_local_copy(text)
    assert copy.video is not None and copy.video["profile"] == "High"
    assert copy.packets == [VideoPacket(Fraction(10), None, True)]
    assert copy.audio_pts == [Fraction(10)] and copy.untimed
    assert parse_rotation({"streams": [{"side_data_list": [{"rotation": -90}]}]}) == 270
    assert parse_rotation({"streams": [{}]}) == 0
