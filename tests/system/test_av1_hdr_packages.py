"""AV1 and HDR in packages with real FFmpeg, on tiny media made with lavfi: an HDR10-tagged HEVC source
keeps HDR on its HEVC and AV1 renditions (10-bit, BT.2020, PQ, its mastering metadata) and is tone-mapped
to SDR BT.709 8-bit on H.264, its storyboard pictures too; the master says VIDEO-RANGE, the MPD the
transfer; an SDR source's AV1 + H.264 package lists both codecs and decodes through both manifests.

Each rendition command runs on its own, as a package's children do (see test_cmaf.py). SVT-AV1 runs at
its fastest preset here: only the codec and the colour are checked, not the quality."""

from __future__ import annotations

import asyncio
import json
import subprocess
import xml.etree.ElementTree as ET
from pathlib import Path

import msgspec
import pytest

from mpr_common.colour import dynamic_range
from mpr_common.events import ContentLight, MasteringDisplay, MediaInfo, Rendition
from mpr_common.mediainfo import probe
from mpr_common.presets import AUDIO_RENDITION, DASH_MANIFEST, MASTER_PLAYLIST, PRESETS, Preset, Rung
from mpr_transcoder.ffmpeg import run_ffmpeg
from mpr_transcoder.ffmpeg.argv import local_input
from mpr_transcoder.ffmpeg.probe import with_hdr_metadata
from mpr_transcoder.kinds.colour import to_sdr_filter
from mpr_transcoder.kinds.ladder import ladder_rungs
from mpr_transcoder.kinds.package.manifests import dash_mpd, hls_master
from mpr_transcoder.kinds.rendition import cmaf
from mpr_transcoder.kinds.storyboard import poster_args
from mpr_transcoder.kinds.transcode.parts import video_chunk_args
from tests.media import ffmpeg, make_video

pytestmark = pytest.mark.system

MASTER_DISPLAY = "G(13250,34500)B(7500,3000)R(34000,16000)WP(15635,16450)L(10000000,1)"
SVT_FASTEST = "12"


def small(name: str, codec: str, encoder_preset: str) -> Rung:
    return Rung(
        name=name,
        height=180,
        video_codec=codec,
        crf=40 if codec == "libsvtav1" else 30,
        max_rate="300k",
        buf_size="600k",
        encoder_preset=encoder_preset,
    )


# abr-av1's segments, GOP and audio with one tiny rung of each codec
HDR_PRESET = msgspec.structs.replace(
    PRESETS["abr-av1"],
    ladder=(
        small("avc-180p", "libx264", "ultrafast"),
        small("hevc-180p", "libx265", "ultrafast"),
        small("av1-180p", "libsvtav1", SVT_FASTEST),
    ),
)
# abr-av1 itself at SVT's fastest preset: the rungs a 180-line source gets are its lowest AV1 and H.264
SDR_PRESET = msgspec.structs.replace(
    PRESETS["abr-av1"],
    ladder=tuple(
        msgspec.structs.replace(r, encoder_preset=SVT_FASTEST) if r.video_codec == "libsvtav1" else r
        for r in PRESETS["abr-av1"].ladder
    ),
)


def make_hdr10_hevc(path: Path, seconds: int = 2) -> Path:
    """HEVC Main 10 tagged HDR10 (BT.2020, PQ) with mastering display and content light SEI, and sound."""
    ffmpeg(
        "-f", "lavfi", "-i", f"testsrc2=size=320x180:rate=25:duration={seconds}",
        "-f", "lavfi", "-i", f"sine=frequency=440:sample_rate=48000:duration={seconds}",
        "-vf", "format=yuv420p10le",
        "-c:v", "libx265", "-preset", "ultrafast",
        "-x265-params", f"log-level=error:hdr10=1:master-display={MASTER_DISPLAY}:max-cll=1000,400",
        "-color_primaries", "bt2020", "-color_trc", "smpte2084", "-colorspace", "bt2020nc",
        "-c:a", "aac", "-shortest", str(path),
    )  # fmt: skip
    return path


def ffprobe_json(*args: str) -> dict:
    out = subprocess.run(["ffprobe", "-v", "error", *args, "-of", "json"], check=True, capture_output=True)
    return json.loads(out.stdout)


async def run_all(commands: list[list[str]]) -> None:
    slots = asyncio.Semaphore(2)

    async def one(args: list[str]) -> None:
        async with slots:
            await run_ffmpeg(args, lambda r: None, timeout=180)

    await asyncio.gather(*(one(a) for a in commands))


def encode_package(source: Path, info: MediaInfo, preset: Preset, out: Path) -> list[Rendition]:
    rungs: list[Rung | None] = [*ladder_rungs(preset, info), None]
    asyncio.run(run_all([cmaf.rendition_args(cmaf.local_input(source), preset, r, info, out) for r in rungs]))
    renditions = [cmaf.describe_rendition(out, r.name if r else AUDIO_RENDITION, r) for r in rungs]
    (out / MASTER_PLAYLIST).write_text(hls_master(renditions))
    (out / DASH_MANIFEST).write_text(dash_mpd(renditions))
    return renditions


def joined(out: Path, r: Rendition) -> Path:
    """The rendition as one fragmented MP4: its init segment and its media segments."""
    names = [r.media_pattern % (r.start_number + i) for i in range(len(r.segments))]
    path = out / f"joined-{r.name}.mp4"
    path.write_bytes((out / r.init).read_bytes() + b"".join((out / n).read_bytes() for n in names))
    return path


def colour(path: Path) -> dict:
    """The video stream's pixel format and colour tags, and its first frame's side data types."""
    data = ffprobe_json(
        "-select_streams", "v:0", "-read_intervals", "%+#1", "-show_frames", "-show_streams", str(path)
    )  # fmt: skip
    stream = data["streams"][0]
    sides = {s.get("side_data_type") for f in data.get("frames", []) for s in f.get("side_data_list", [])}
    keys = ("pix_fmt", "color_primaries", "color_transfer", "color_space")
    return {**{k: stream.get(k) for k in keys}, "side_data": sides}


def decodes(url: str) -> None:
    done = subprocess.run(
        ["ffmpeg", "-v", "error", "-i", url, "-map", "0:v", "-map", "0:a?", "-f", "null", "-"],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0 and done.stderr.strip() == "", done.stderr


@pytest.fixture(scope="module")
def hdr(tmp_path_factory) -> tuple[Path, MediaInfo, list[Rendition], Path]:
    media = tmp_path_factory.mktemp("hdr-media")
    source = make_hdr10_hevc(media / "hdr10.mp4")
    info = asyncio.run(probe(str(source), protocols="file"))
    info = asyncio.run(with_hdr_metadata(info, str(source), 30.0, protocols="file"))
    out = tmp_path_factory.mktemp("hdr-package")
    return source, info, encode_package(source, info, HDR_PRESET, out), out


def test_an_hdr10_source_is_detected_with_its_mastering_metadata(hdr) -> None:
    _, info, _, _ = hdr
    assert dynamic_range(info) == "pq"
    assert (info.color_primaries, info.color_space, info.pix_fmt) == ("bt2020", "bt2020nc", "yuv420p10le")
    assert info.mastering_display == MasteringDisplay(
        red=(34000, 16000),
        green=(13250, 34500),
        blue=(7500, 3000),
        white_point=(15635, 16450),
        max_luminance=10000000,
        min_luminance=1,
    )
    assert info.content_light == ContentLight(max_cll=1000, max_fall=400)


def test_hevc_and_av1_keep_hdr_and_h264_is_tone_mapped(hdr) -> None:
    _, _, renditions, out = hdr
    by_name = {r.name: r for r in renditions}
    hdr10 = ("yuv420p10le", "bt2020", "smpte2084", "bt2020nc")
    for name in ("hevc-180p", "av1-180p"):
        seen = colour(joined(out, by_name[name]))
        assert (
            tuple(seen[k] for k in ("pix_fmt", "color_primaries", "color_transfer", "color_space")) == hdr10
        )
        # the source's mastering display and content light level, carried into the new stream
        assert {"Mastering display metadata", "Content light level metadata"} <= seen["side_data"], name
        assert by_name[name].video_range == "PQ"
    sdr = colour(joined(out, by_name["avc-180p"]))
    assert (sdr["pix_fmt"], sdr["color_primaries"], sdr["color_transfer"], sdr["color_space"]) == (
        "yuv420p",
        "bt709",
        "bt709",
        "bt709",
    )
    assert by_name["avc-180p"].video_range is None
    assert by_name["av1-180p"].codecs.startswith("av01.0.") and by_name["av1-180p"].codecs.endswith("M.10")


def test_the_manifests_signal_the_range_and_play(hdr) -> None:
    _, _, renditions, out = hdr
    master = (out / MASTER_PLAYLIST).read_text()
    variants = {
        line.rsplit("\n", 1)[-1]: line
        for line in (f"{a}\n{b}" for a, b in zip(master.splitlines(), master.splitlines()[1:], strict=False))
        if line.startswith("#EXT-X-STREAM-INF")
    }
    assert "VIDEO-RANGE=PQ" in variants["hevc-180p.m3u8"] and "VIDEO-RANGE=PQ" in variants["av1-180p.m3u8"]
    assert "VIDEO-RANGE=SDR" in variants["avc-180p.m3u8"]
    mpd = ET.fromstring((out / DASH_MANIFEST).read_text())
    ns = {"d": "urn:mpeg:dash:schema:mpd:2011"}
    for aset in mpd.iterfind(".//d:AdaptationSet[@contentType='video']", ns):
        codecs = {r.get("codecs", "")[:4] for r in aset.iterfind("d:Representation", ns)}
        transfer = [
            p.get("value")
            for p in aset.iterfind("d:EssentialProperty", ns)
            if p.get("schemeIdUri") == "urn:mpeg:mpegB:cicp:TransferCharacteristics"
        ]
        assert transfer == ([] if codecs == {"avc1"} else ["16"]), codecs
    decodes(str(out / MASTER_PLAYLIST))
    decodes(str(out / DASH_MANIFEST))


def luma(picture: Path) -> bytes:
    done = subprocess.run(
        ["ffmpeg", "-v", "error", "-i", str(picture), "-f", "rawvideo", "-pix_fmt", "gray", "-"],
        check=True,
        capture_output=True,
    )
    return done.stdout


def test_an_hdr_sources_poster_is_tone_mapped(hdr, tmp_path) -> None:
    source, info, _, _ = hdr
    mapped, raw = tmp_path / "poster.jpg", tmp_path / "raw.jpg"
    to_sdr = to_sdr_filter(info)
    assert to_sdr is not None and "tonemap=tonemap=hable" in to_sdr
    asyncio.run(
        run_all(
            [
                poster_args(str(source), 0.5, mapped, protocols="file", to_sdr=to_sdr),
                poster_args(str(source), 0.5, raw, protocols="file"),
            ]
        )
    )
    assert ffprobe_json("-show_streams", str(mapped))["streams"][0]["pix_fmt"] == "yuvj420p"
    # PQ code values shown as they are (the raw frame) are not the picture mapped to BT.709: measured,
    # pixels differ by 25 levels on average
    a, b = luma(mapped), luma(raw)
    assert len(a) == len(b) and sum(abs(x - y) for x, y in zip(a, b, strict=True)) / len(a) > 12


def test_an_hdr_sources_transcode_is_tone_mapped_to_bt709(hdr, tmp_path) -> None:
    """A transcode's video (here one chunk of it: the whole transcode's picture options are the same,
    tests/unit/transcoder/test_sdr_outputs.py) of an HDR10 source through x264 is 8-bit BT.709."""
    source, info, _, _ = hdr
    preset = msgspec.structs.replace(PRESETS["h264-480p"], x264_preset="ultrafast")
    out = tmp_path / "chunk.mp4"
    asyncio.run(
        run_all([video_chunk_args(local_input(source), preset, out, 10**8, to_sdr=to_sdr_filter(info))])
    )
    got = colour(out)
    assert (got["pix_fmt"], got["color_primaries"], got["color_transfer"], got["color_space"]) == (
        "yuv420p",
        "bt709",
        "bt709",
        "bt709",
    )


def test_an_sdr_av1_and_h264_package_lists_both_codecs_and_decodes(tmp_path_factory) -> None:
    source = make_video(tmp_path_factory.mktemp("sdr-media") / "clip.mp4", seconds=2, size="320x180")
    info = asyncio.run(probe(str(source), protocols="file"))
    assert dynamic_range(info) == "sdr"
    out = tmp_path_factory.mktemp("av1-package")
    renditions = encode_package(source, info, SDR_PRESET, out)
    assert sorted(r.name for r in renditions) == ["360p", "audio", "av1-360p"]
    master = (out / MASTER_PLAYLIST).read_text()
    assert 'CODECS="av01.0.' in master and 'CODECS="avc1.' in master
    assert "VIDEO-RANGE" not in master  # an SDR package's master stays as it was
    av1 = colour(joined(out, next(r for r in renditions if r.name == "av1-360p")))
    assert av1["pix_fmt"] == "yuv420p" and av1["color_transfer"] in (None, "unknown", "bt709")
    mpd = ET.fromstring((out / DASH_MANIFEST).read_text())
    sets = mpd.findall(".//{urn:mpeg:dash:schema:mpd:2011}AdaptationSet[@contentType='video']")
    assert len(sets) == 2  # one per codec
    decodes(str(out / MASTER_PLAYLIST))
    decodes(str(out / DASH_MANIFEST))
