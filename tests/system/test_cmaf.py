"""CMAF renditions of a package with real FFmpeg on media made with lavfi: each rendition command run on
its own (as the package's children are), described, and the manifests written over them; key frames and
segments aligned across renditions (H.264 and HEVC); the package played over HTTP through its HLS master
playlist and its DASH manifest; the one-command raw ladder with the same settings."""

from __future__ import annotations

import asyncio
import functools
import http.server
import json
import math
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import msgspec
import pytest

from mpr_common.events import MediaInfo, Rendition
from mpr_common.mediainfo import probe
from mpr_common.presets import AUDIO_RENDITION, DASH_MANIFEST, MASTER_PLAYLIST, PRESETS, Preset, Rung
from mpr_transcoder.ffmpeg import run_ffmpeg
from mpr_transcoder.kinds.ladder import ladder_rungs
from mpr_transcoder.kinds.package.manifests import dash_mpd, hls_master
from mpr_transcoder.kinds.rendition import cmaf
from tests.media import make_video

pytestmark = pytest.mark.system

SECONDS = 8  # two 4 s segments, four 2 s GOPs: a segment boundary and GOPs inside segments to align
FPS = 25

# abr-h264's settings (segments, GOP, audio) with small, fast rungs, and one HEVC rung as abr-h264-hevc has
TEST_PRESET = msgspec.structs.replace(
    PRESETS["abr-h264"],
    ladder=(
        Rung(name="360p", height=360, crf=26, max_rate="800k", buf_size="1600k", encoder_preset="ultrafast"),
        Rung(name="240p", height=240, crf=27, max_rate="400k", buf_size="800k", encoder_preset="veryfast"),
        Rung(
            name="hevc-240p",
            height=240,
            video_codec="libx265",
            crf=28,
            max_rate="300k",
            buf_size="600k",
            encoder_preset="ultrafast",
        ),
    ),
)


def ffprobe_json(*args: str) -> dict:
    out = subprocess.run(["ffprobe", "-v", "error", *args, "-of", "json"], check=True, capture_output=True)
    return json.loads(out.stdout)


async def run_two_at_a_time(commands: list[list[str]]) -> None:
    """As on two transcoders: two FFmpeg runs at a time."""
    slots = asyncio.Semaphore(2)

    async def one(args: list[str]) -> None:
        async with slots:
            await run_ffmpeg(args, lambda r: None, timeout=120)

    await asyncio.gather(*(one(a) for a in commands))


class Package(msgspec.Struct):
    out: Path
    info: MediaInfo
    renditions: list[Rendition]
    source: Path


def encode_package(source: Path, info: MediaInfo, preset: Preset, out: Path) -> list[Rendition]:
    rungs: list[Rung | None] = [*ladder_rungs(preset, info), None]
    commands = [cmaf.rendition_args(cmaf.local_input(source), preset, r, info, out) for r in rungs]
    asyncio.run(run_two_at_a_time(commands))
    renditions = [cmaf.describe_rendition(out, r.name if r else AUDIO_RENDITION, r) for r in rungs]
    (out / MASTER_PLAYLIST).write_text(hls_master(renditions))
    (out / DASH_MANIFEST).write_text(dash_mpd(renditions))
    return renditions


@pytest.fixture(scope="module")
def package(tmp_path_factory) -> Package:
    media = tmp_path_factory.mktemp("media")
    source = make_video(media / "clip.mp4", seconds=SECONDS, size="640x360", rate=FPS)
    info = asyncio.run(probe(str(source), protocols="file"))
    out = tmp_path_factory.mktemp("package")
    return Package(out, info, encode_package(source, info, TEST_PRESET, out), source)


def videos(renditions: list[Rendition]) -> list[Rendition]:
    return [r for r in renditions if r.type == "video"]


def joined(out: Path, r: Rendition, segments: list[str] | None = None) -> Path:
    """The rendition's init segment followed by its media segments: one fragmented MP4 file."""
    names = (
        segments
        if segments is not None
        else [r.media_pattern % (r.start_number + i) for i in range(len(r.segments))]
    )
    path = out / f"joined-{r.name}-{len(names)}-{names[0] if names else ''}.mp4"
    path.write_bytes((out / r.init).read_bytes() + b"".join((out / n).read_bytes() for n in names))
    return path


def video_packets(path: Path) -> list[dict]:
    """The picture's packets in the order they are read: pts_time, flags, pos (their offset in the file)."""
    entries = ["-show_entries", "packet=pts_time,flags,pos"]
    return ffprobe_json("-select_streams", "v:0", *entries, str(path))["packets"]


def key_frame_times(packets: list[dict]) -> list[float]:
    return [float(p["pts_time"]) for p in packets if "K" in p["flags"]]


@pytest.fixture(scope="module")
def packets(package: Package) -> dict[str, list[dict]]:
    """Each video rendition's packets, its segments joined in one file: one ffprobe a rendition."""
    return {r.name: video_packets(joined(package.out, r)) for r in videos(package.renditions)}


# --- what describe_rendition reads, checked against ffprobe ---------------------------------------------


def test_renditions_are_described_as_ffprobe_sees_them(package: Package) -> None:
    assert [r.name for r in package.renditions] == ["360p", "240p", "hevc-240p", AUDIO_RENDITION]
    for r in package.renditions:
        data = ffprobe_json("-show_streams", "-show_format", str(joined(package.out, r)))
        (stream,) = data["streams"]
        assert r.playlist == f"{r.name}.m3u8" and (package.out / r.playlist).is_file()
        assert r.start_number == 0
        assert sum(r.segments) == pytest.approx(float(data["format"]["duration"]), abs=0.1)
        assert abs(sum(r.segments) - SECONDS) < 0.1
        assert 0 < r.average_bandwidth <= r.bandwidth
        if r.type == "audio":
            assert (stream["codec_name"], stream["profile"]) == ("aac", "LC")
            assert r.codecs == "mp4a.40.2"
            assert (
                (r.sample_rate, r.channels) == (48000, 2) == (int(stream["sample_rate"]), stream["channels"])
            )
            continue
        assert (r.width, r.height) == (stream["width"], stream["height"])
        assert r.height == int(r.name.removeprefix("hevc-").removesuffix("p"))
        assert r.width == round(r.height * 16 / 9 / 2) * 2  # the source's aspect, square pixels
        assert r.frame_rate == FPS
        family, *fields = r.codecs.split(".")
        assert family == stream["codec_tag_string"]
        if stream["codec_name"] == "h264":
            profile_idc = {"Constrained Baseline": 66, "Baseline": 66, "Main": 77, "High": 100}[
                stream["profile"]
            ]
            assert int(fields[0][:2], 16) == profile_idc
            assert int(fields[0][4:], 16) == stream["level"]
        else:
            assert stream["codec_name"] == "hevc" and stream["profile"] == "Main"
            assert fields[0] == "1" and fields[2] == f"L{stream['level']}"


def test_video_capped_at_max_rate(package: Package) -> None:
    rungs = {r.name: r for r in TEST_PRESET.ladder}
    for r in videos(package.renditions):
        cap = int(rungs[r.name].max_rate.removesuffix("k")) * 1000
        # VBV holds the rate over the buffer's span (2 s here): an average over the whole file well below
        # the cap plus the buffer, a testsrc2 pattern being hard to code
        assert r.average_bandwidth < cap + int(rungs[r.name].buf_size.removesuffix("k")) * 1000 / SECONDS


# --- alignment ------------------------------------------------------------------------------------------


def test_key_frames_aligned_every_gop_in_every_rendition(package: Package, packets) -> None:
    gop = TEST_PRESET.gop_seconds
    assert gop
    expected = [i * gop for i in range(int(SECONDS / gop))]
    times = {r.name: key_frame_times(packets[r.name]) for r in videos(package.renditions)}
    assert sorted(times) == ["240p", "360p", "hevc-240p"]
    for name, keys in times.items():
        assert keys == pytest.approx(expected, abs=1e-6), name


def test_segments_aligned_and_each_starts_with_a_key_frame(package: Package, packets) -> None:
    vs = videos(package.renditions)
    assert len({len(r.segments) for r in vs}) == 1
    assert len({tuple(r.segments) for r in vs}) == 1  # same boundaries, not only the same count
    seg = TEST_PRESET.hls_segment_seconds
    assert vs[0].segments == pytest.approx([seg] * (SECONDS // seg))
    for r in vs:
        # the segments' bytes in the joined file: the first packet read from each is a key frame
        start = (package.out / r.init).stat().st_size
        for i in range(len(r.segments)):
            name = r.media_pattern % (r.start_number + i)
            end = start + (package.out / name).stat().st_size
            first = next(p for p in packets[r.name] if start <= int(p["pos"]) < end)
            assert "K" in first["flags"], name
            start = end


# --- played over HTTP ---------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def served(package: Package) -> Iterator[str]:
    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

    handler = functools.partial(Quiet, directory=str(package.out))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()
    thread.join()


@pytest.mark.parametrize("manifest", [MASTER_PLAYLIST, DASH_MANIFEST])
def test_manifest_opens_over_http_with_every_rendition(package: Package, served: str, manifest: str) -> None:
    data = ffprobe_json("-show_streams", "-show_format", f"{served}/{manifest}")
    seen = sorted(
        (s["codec_name"], s.get("height")) for s in data["streams"] if s["codec_type"] in ("video", "audio")
    )
    assert seen == sorted([("aac", None), ("h264", 240), ("h264", 360), ("hevc", 240)])
    assert abs(float(data["format"]["duration"]) - SECONDS) <= TEST_PRESET.hls_segment_seconds


@pytest.mark.parametrize("stream", ["0:v:0", "0:v:2", "0:a:0"])
def test_dash_manifest_decodes_cleanly_over_http(package: Package, served: str, stream: str) -> None:
    proc = subprocess.run(
        [
            "ffmpeg",
            "-nostdin",
            "-v",
            "error",
            "-i",
            f"{served}/{DASH_MANIFEST}",
            "-map",
            stream,
            "-progress",
            "pipe:1",
            "-f",
            "null",
            "-",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0 and proc.stderr == "", proc.stderr
    report = dict(line.split("=", 1) for line in proc.stdout.splitlines() if "=" in line)
    assert abs(int(report["out_time_us"]) / 1e6 - SECONDS) < 0.1
    if ":v:" in stream:
        assert int(report["frame"]) == SECONDS * FPS


def test_ladder_command_encodes_the_same_ladder(package: Package, packets, tmp_path: Path) -> None:
    args = cmaf.ladder_command(package.source, TEST_PRESET, package.info, tmp_path)
    for rung in TEST_PRESET.ladder:  # the per-rung encoder options are the rendition commands' own
        encoder = cmaf.video_encoder_args(TEST_PRESET, rung, package.info)
        assert any(args[i : i + len(encoder)] == encoder for i in range(len(args)))
    subprocess.run(args, check=True, capture_output=True, timeout=120)
    for r in package.renditions:
        rung = next((x for x in TEST_PRESET.ladder if x.name == r.name), None)
        raw = cmaf.describe_rendition(tmp_path, r.name, rung)
        assert (raw.codecs, raw.width, raw.height, raw.segments) == (r.codecs, r.width, r.height, r.segments)
        if rung:
            assert key_frame_times(video_packets(joined(tmp_path, raw))) == key_frame_times(packets[r.name])


def test_ntsc_rate_keeps_key_frames_aligned(tmp_path: Path) -> None:
    """29.97 fps: forced key frames fall on the first frame at or after each 2 s, never a frame apart
    between renditions or codecs."""
    source = tmp_path / "ntsc.mp4"
    subprocess.run(
        [
            "ffmpeg",
            "-nostdin",
            "-v",
            "error",
            "-f",
            "lavfi",
            "-i",
            "testsrc2=size=320x180:rate=30000/1001:duration=9",
            "-c:v",
            "libx264",
            "-preset",
            "ultrafast",
            "-pix_fmt",
            "yuv420p",
            str(source),
        ],
        check=True,
    )
    info = asyncio.run(probe(str(source), protocols="file"))
    rungs = [r for r in TEST_PRESET.ladder if r.height == 240]
    commands = [cmaf.rendition_args(cmaf.local_input(source), TEST_PRESET, r, info, tmp_path) for r in rungs]
    asyncio.run(run_two_at_a_time(commands))
    described = [cmaf.describe_rendition(tmp_path, r.name, r) for r in rungs]
    keys = [key_frame_times(video_packets(joined(tmp_path, r))) for r in described]
    assert keys[0] == keys[1]
    frame = 1001 / 30000
    assert keys[0] == pytest.approx([-(-2 * i // frame) * frame for i in range(5)], abs=1e-3)
    assert all(r.frame_rate == pytest.approx(30000 / 1001) for r in described)


def test_a_source_shorter_than_its_rung_is_not_upscaled(tmp_path: Path) -> None:
    source = make_video(tmp_path / "small.mp4", seconds=2, size="320x180")
    info = asyncio.run(probe(str(source), protocols="file"))
    (rung,) = [r for r in ladder_rungs(TEST_PRESET, info) if r.video_codec == "libx264"]
    assert rung.height > 180
    asyncio.run(
        run_two_at_a_time([cmaf.rendition_args(cmaf.local_input(source), TEST_PRESET, rung, info, tmp_path)])
    )
    r = cmaf.describe_rendition(tmp_path, rung.name, rung)
    assert (r.width, r.height) == (320, 180)


# --- arguments (pure) ---------------------------------------------------------------------------------


INFO_1080 = MediaInfo(video_codec="h264", width=1920, height=1080, fps=29.97, audio_codec="aac")


def test_rungs_above_the_source_are_left_out() -> None:
    preset = PRESETS["abr-h264"]
    assert [r.name for r in ladder_rungs(preset, INFO_1080)] == ["1080p", "720p", "480p", "360p"]
    info_576 = msgspec.structs.replace(INFO_1080, width=1024, height=576)
    assert [r.name for r in ladder_rungs(preset, info_576)] == ["480p", "360p"]
    tiny = msgspec.structs.replace(INFO_1080, width=320, height=240)
    assert [r.name for r in ladder_rungs(preset, tiny)] == ["360p"]  # at its own height
    assert [r.name for r in ladder_rungs(TEST_PRESET, tiny)] == ["240p", "hevc-240p"]
    assert [r.name for r in ladder_rungs(TEST_PRESET, msgspec.structs.replace(tiny, height=160))] == [
        "240p",
        "hevc-240p",
    ]
    assert ladder_rungs(preset, MediaInfo(audio_codec="aac")) == ()


@pytest.mark.parametrize(
    ("fps", "frames"), [(25.0, 50), (29.97, 60), (30000 / 1001, 60), (23.976, 48), (60.0, 120)]
)
def test_gop_in_frames_rounds_up(fps: float, frames: int) -> None:
    info = msgspec.structs.replace(INFO_1080, fps=fps)
    assert cmaf.gop_frames(PRESETS["abr-h264"], info) == frames


def test_rendition_args() -> None:
    preset = PRESETS["abr-h264-hevc"]
    inp = ["-protocol_whitelist", "http,https", "-i", "https://s3/x.mp4"]
    out = Path("/work/pkg")
    h264 = cmaf.rendition_args(inp, preset, preset.ladder[1], INFO_1080, out)
    assert h264[0] == "ffmpeg" and h264[h264.index("-progress") + 1] == "pipe:1"
    assert h264[h264.index("-i") - 2 : h264.index("-i") + 2] == inp
    assert "-an" in h264 and h264[h264.index("-map") + 1] == "0:v:0"
    assert h264[h264.index("-crf") + 1] == "23" and h264[h264.index("-maxrate") + 1] == "3000k"
    assert h264[h264.index("-g") + 1] == "60" and h264[h264.index("-sc_threshold") + 1] == "0"
    assert h264[h264.index("-force_key_frames") + 1] == "expr:gte(t,n_forced*2)"
    assert h264[h264.index("-hls_segment_type") + 1] == "fmp4" and h264[h264.index("-hls_time") + 1] == "4"
    assert h264[h264.index("-hls_fmp4_init_filename") + 1] == "720p_init.mp4"
    assert h264[-2:] == [str(out / "720p_%05d.m4s"), str(out / "720p.m3u8")]
    hevc = cmaf.rendition_args(inp, preset, preset.ladder[-2], INFO_1080, out)
    params = dict(p.split("=") for p in hevc[hevc.index("-x265-params") + 1].split(":"))
    assert params | {"scenecut": "0", "open-gop": "0", "keyint": "60", "min-keyint": "60"} == params
    assert hevc[hevc.index("-tag:v") + 1] == "hvc1" and hevc[hevc.index("-forced-idr") + 1] == "1"
    audio = cmaf.rendition_args(inp, preset, None, INFO_1080, out, loudnorm_filter="loudnorm=I=-23")
    assert "-vn" in audio and audio[audio.index("-af") + 1] == "loudnorm=I=-23"
    assert [audio[audio.index(o) + 1] for o in ("-c:a", "-b:a", "-ar", "-ac")] == [
        "aac",
        "128k",
        "48000",
        "2",
    ]
    assert audio[-1] == str(out / "audio.m3u8")
    with pytest.raises(ValueError, match="-i"):
        cmaf.rendition_args(["https://s3/x.mp4"], preset, None, INFO_1080, out)
    with pytest.raises(ValueError, match="no audio"):
        cmaf.rendition_args(inp, preset, None, msgspec.structs.replace(INFO_1080, audio_codec=None), out)
    with pytest.raises(ValueError, match="not an adaptive ladder"):
        cmaf.rendition_args(inp, PRESETS["h264-720p"], preset.ladder[0], INFO_1080, out)


# --- playlists, bit rates, codec strings (pure) ------------------------------------------------------------


PLAYLIST = """#EXTM3U
#EXT-X-VERSION:7
#EXT-X-TARGETDURATION:4
#EXT-X-MEDIA-SEQUENCE:3
#EXT-X-PLAYLIST-TYPE:VOD
#EXT-X-MAP:URI="a_init.mp4"
#EXTINF:4.010667,
a_00003.m4s
#EXTINF:3.989333,
a_00004.m4s
#EXT-X-ENDLIST
"""


def test_parse_media_playlist() -> None:
    pl = cmaf.parse_media_playlist(PLAYLIST)
    assert (pl.target_duration, pl.init) == (4.0, "a_init.mp4")
    assert pl.segments == [("a_00003.m4s", 4.010667), ("a_00004.m4s", 3.989333)]
    with pytest.raises(ValueError):
        cmaf.parse_media_playlist("<html>")


def test_peak_bandwidth_ignores_a_short_last_segment() -> None:
    # 4 s segments of 1 MB, then a last one of 0.04 s holding 50 kB (10 Mbit/s on its own): it counts
    # only with the segment before it (4.04 s, within 0.5 to 1.5 target durations)
    sizes, durations = [1_000_000] * 3 + [50_000], [4.0] * 3 + [0.04]
    assert cmaf.peak_bandwidth(sizes, durations, 4.0) == math.ceil(8 * 1_050_000 / 4.04)
    # one segment twice the others: the peak is its rate
    assert cmaf.peak_bandwidth([500_000, 1_000_000, 500_000], [4.0] * 3, 4.0) == 2_000_000
    # shorter than half a target duration in all: the whole rate
    assert cmaf.peak_bandwidth([10_000], [1.0], 4.0) == 80_000


def test_codec_strings() -> None:
    assert cmaf.avc_codec_string(bytes([1, 0x64, 0x00, 0x1F, 0xFF])) == "avc1.64001f"
    assert cmaf.avc_codec_string(bytes([1, 0x42, 0xC0, 0x1E, 0xFF])) == "avc1.42c01e"
    # HEVC Main, Main tier, level 4 (120), progressive + frame-only constraint flags (ISO/IEC 14496-15 E.5)
    main = bytes([1, 0x01, 0x60, 0, 0, 0, 0x90, 0, 0, 0, 0, 0, 120])
    assert cmaf.hevc_codec_string(main) == "hvc1.1.6.L120.90"
    main10_high = bytes([1, 0x22, 0x20, 0, 0, 0, 0xB0, 0, 0, 0, 0, 0, 153])
    assert cmaf.hevc_codec_string(main10_high, "hev1") == "hev1.2.4.H153.B0"
    # esds: ES descriptor > decoder config (MPEG-4 audio 0x40) > AudioSpecificConfig (AAC LC, 48 kHz, 2 ch)
    asc = bytes([0x11, 0x90])
    dcd = bytes([0x40, 0x15, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]) + bytes([0x05, len(asc)]) + asc
    es = bytes([0, 1, 0]) + bytes([0x04, len(dcd)]) + dcd
    esds = bytes(4) + bytes([0x03, 0x80, 0x80, 0x80, len(es)]) + es
    assert cmaf.mp4a_codec_string(esds) == "mp4a.40.2"
