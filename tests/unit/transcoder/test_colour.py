"""HDR and AV1 in the rendition commands (pure): an SDR source's argv is as it always was; an HDR source
(PQ, HLG) keeps HDR on HEVC and AV1 rungs (10-bit, BT.2020, its transfer, its mastering metadata) and is
tone-mapped on H.264, thumbnails, storyboard tiles and posters; AV1 codec strings and colr boxes read
from init segments; VIDEO-RANGE in the master and the transfer in the MPD; AV1 rungs of a chunked
package are chunked when a GOP is a whole number of frames, and encoded whole otherwise."""

from __future__ import annotations

import struct
import xml.etree.ElementTree as ET
from pathlib import Path

import msgspec
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from mpr_common.events import ContentLight, JobRequested, MasteringDisplay, MediaInfo, Rendition
from mpr_common.jobs import normalize_job
from mpr_common.presets import PRESETS, Rung
from mpr_transcoder.kinds.colour import to_sdr_filter
from mpr_transcoder.kinds.package.children import PackagePlan, plan_package
from mpr_transcoder.kinds.package.manifests import dash_mpd, hls_master
from mpr_transcoder.kinds.package.releasing import lead, with_shares
from mpr_transcoder.kinds.rendition import cmaf
from mpr_transcoder.kinds.single_output import build_plan
from mpr_transcoder.kinds.storyboard import poster_args, seek_tile_args, single_pass_args

AV1 = PRESETS["abr-av1"]
HEVC = PRESETS["abr-h264-hevc"]
SOURCE = ["-i", "https://bucket/src.mp4"]
SDR = MediaInfo(duration=60.0, video_codec="h264", width=1920, height=1080, fps=25.0, pix_fmt="yuv420p")
MASTERING = MasteringDisplay(
    red=(34000, 16000),
    green=(13250, 34500),
    blue=(7500, 3000),
    white_point=(15635, 16450),
    max_luminance=10000000,
    min_luminance=1,
)
PQ = msgspec.structs.replace(
    SDR,
    video_codec="hevc",
    pix_fmt="yuv420p10le",
    color_transfer="smpte2084",
    color_primaries="bt2020",
    color_space="bt2020nc",
    mastering_display=MASTERING,
    content_light=ContentLight(max_cll=1000, max_fall=400),
)
HLG = msgspec.structs.replace(
    SDR, pix_fmt="yuv420p10le", color_transfer="arib-std-b67", color_primaries="bt2020"
)


def rung(preset, name: str) -> Rung:
    return next(r for r in preset.ladder if r.name == name)


def argv(preset, name: str, info: MediaInfo, tmp: Path) -> list[str]:
    return cmaf.rendition_args(SOURCE, preset, rung(preset, name), info, tmp)


def opt(args: list[str], name: str) -> str:
    return args[args.index(name) + 1]


SDR_FILTER = "scale=w='2*round(min(720,ih)*dar/2)':h='2*trunc(min(720,ih)/2)',setsar=1,format=yuv420p"


def test_an_sdr_sources_commands_are_as_before(tmp_path):
    for preset, name in ((HEVC, "720p"), (HEVC, "hevc-720p")):
        args = argv(preset, name, SDR, tmp_path)
        assert opt(args, "-filter:v") == SDR_FILTER
        assert not {"-color_primaries", "-color_trc", "-colorspace"} & set(args)
        assert "zscale" not in " ".join(args)
    x265 = opt(argv(HEVC, "hevc-720p", SDR, tmp_path), "-x265-params")
    assert x265 == "scenecut=0:open-gop=0:log-level=error:keyint=50:min-keyint=50"
    assert to_sdr_filter(SDR) is None


def test_hevc_keeps_hdr10_with_its_mastering_metadata(tmp_path):
    args = argv(HEVC, "hevc-720p", PQ, tmp_path)
    assert opt(args, "-filter:v").endswith(",setsar=1,format=yuv420p10le")
    assert (opt(args, "-color_primaries"), opt(args, "-color_trc"), opt(args, "-colorspace")) == (
        "bt2020",
        "smpte2084",
        "bt2020nc",
    )
    params = opt(args, "-x265-params").split(":")
    assert "hdr10=1" in params and "max-cll=1000,400" in params
    assert "master-display=G(13250,34500)B(7500,3000)R(34000,16000)WP(15635,16450)L(10000000,1)" in params
    # without mastering metadata: still HDR10, only without the SEI
    bare = msgspec.structs.replace(PQ, mastering_display=None, content_light=None)
    params = opt(argv(HEVC, "hevc-720p", bare, tmp_path), "-x265-params").split(":")
    assert "hdr10=1" in params and not any(p.startswith(("master-display", "max-cll")) for p in params)


def test_hlg_keeps_its_transfer_without_hdr10_signalling(tmp_path):
    args = argv(HEVC, "hevc-720p", HLG, tmp_path)
    assert opt(args, "-color_trc") == "arib-std-b67" and opt(args, "-filter:v").endswith("yuv420p10le")
    assert "hdr10=1" not in opt(args, "-x265-params")
    av1 = argv(AV1, "av1-720p", HLG, tmp_path)
    assert opt(av1, "-color_trc") == "arib-std-b67"
    assert "tin=arib-std-b67" in opt(argv(AV1, "720p", HLG, tmp_path), "-filter:v")


def test_h264_of_an_hdr_source_is_tone_mapped_to_bt709(tmp_path):
    args = argv(AV1, "720p", PQ, tmp_path)
    chain = opt(args, "-filter:v")
    scale = "scale=w='2*round(min(720,ih)*dar/2)':h='2*trunc(min(720,ih)/2)',setsar=1,"
    assert chain.startswith(scale + "zscale=tin=smpte2084:pin=bt2020:min=bt2020nc:t=linear:npl=100,")
    assert "tonemap=tonemap=hable:desat=0" in chain and chain.endswith("r=tv,format=yuv420p")
    assert (opt(args, "-color_primaries"), opt(args, "-color_trc"), opt(args, "-colorspace")) == (
        "bt709",
    ) * 3
    assert opt(args, "-c:v") == "libx264"


def test_av1_rungs_closed_gops_at_a_fixed_interval_and_hdr(tmp_path):
    sdr = argv(AV1, "av1-1080p", SDR, tmp_path)
    assert (opt(sdr, "-c:v"), opt(sdr, "-preset"), opt(sdr, "-g")) == ("libsvtav1", "10", "50")
    assert opt(sdr, "-svtav1-params") == "irefresh-type=2" and opt(sdr, "-maxrate") == "3000k"
    assert "-force_key_frames" not in sdr  # FFmpeg 5.1's libsvtav1 ignores them
    assert "-color_trc" not in sdr and opt(sdr, "-filter:v").endswith("format=yuv420p")
    hdr = argv(AV1, "av1-1080p", PQ, tmp_path)
    assert opt(hdr, "-color_trc") == "smpte2084" and opt(hdr, "-filter:v").endswith("format=yuv420p10le")
    params = opt(hdr, "-svtav1-params").split(":")
    assert params[0] == "irefresh-type=2" and "content-light=1000,400" in params
    assert (
        "mastering-display=G(0.26500,0.69000)B(0.15000,0.06000)R(0.68000,0.32000)WP(0.31270,0.32900)"
        "L(1000.0000,0.0001)"
    ) in params


def test_chunks_and_the_raw_ladder_use_the_same_colour(tmp_path):
    span = msgspec.convert({"index": 1, "start": 20.0, "end": 40.0, "first_segment": 5}, type=cmaf.ChunkSpan)
    chunk = cmaf.chunk_rendition_args(SOURCE, HEVC, rung(HEVC, "hevc-720p"), PQ, tmp_path, span)
    assert opt(chunk, "-filter:v") == "setpts=PTS-STARTPTS," + opt(
        argv(HEVC, "hevc-720p", PQ, tmp_path), "-filter:v"
    )
    ladder = " ".join(cmaf.ladder_command(tmp_path / "src.mp4", AV1, PQ, tmp_path))
    assert "tonemap=tonemap=hable" in ladder and "format=yuv420p10le" in ladder


def test_thumbnails_tiles_and_posters_of_an_hdr_source_are_sdr(tmp_path):
    job = normalize_job(JobRequested(job_id="t", kind="thumbnail", source_key="a.mp4"))
    thumb = build_plan(job, PRESETS["jpeg-320"], "https://b/a.mp4", PQ, tmp_path, 10**9).args
    assert opt(thumb, "-vf").startswith("scale=320:-2,zscale=") and "tonemap" in opt(thumb, "-vf")
    sdr = build_plan(job, PRESETS["jpeg-320"], "https://b/a.mp4", SDR, tmp_path, 10**9).args
    assert opt(sdr, "-vf") == "scale=320:-2"
    to_sdr = to_sdr_filter(PQ)
    poster = poster_args("https://b/a.mp4", 3.0, tmp_path / "p.jpg", to_sdr=to_sdr)
    assert opt(poster, "-vf") == to_sdr and "-vf" not in poster_args(
        "https://b/a.mp4", 3.0, tmp_path / "p.jpg"
    )
    tile = opt(
        seek_tile_args(
            "https://b/a.mp4", 1.0, 160, 90, tmp_path / "t.png", tmp_path / "t.txt", to_sdr=to_sdr
        ),
        "-vf",
    )
    assert tile.index("scale=160:90") < tile.index("tonemap") < tile.index("pad=160:90")
    one = single_pass_args(
        "https://b/a.mp4", 60.0, 1.0, 160, 90, 10, 10, tmp_path, tmp_path / "t.txt", to_sdr=to_sdr
    )
    assert "tonemap" in opt(one, "-filter_complex")


# --- init segments and manifests -------------------------------------------------------------------


def box(kind: bytes, payload: bytes) -> bytes:
    return struct.pack(">I", 8 + len(payload)) + kind + payload


def test_av1_codec_strings():
    # marker/version, profile 0 level 8 (4.0), tier M, 10-bit 4:2:0
    assert cmaf.av1_codec_string(bytes([0x81, 0x08, 0x4C, 0x00])) == "av01.0.08M.10"
    assert cmaf.av1_codec_string(bytes([0x81, 0x0D, 0x0C, 0x00])) == "av01.0.13M.08"
    assert cmaf.av1_codec_string(bytes([0x81, 0x2D, 0xEC, 0x00])) == "av01.1.13H.12"
    with pytest.raises(ValueError):
        cmaf.av1_codec_string(bytes([0x01, 0x08, 0x4C]))


def init_segment(colr: bytes | None) -> bytes:
    visual = bytes(24) + struct.pack(">HH", 1280, 720) + bytes(78 - 28)
    children = box(b"av1C", bytes([0x81, 0x08, 0x4C, 0x00])) + (box(b"colr", colr) if colr else b"")
    stsd = box(b"stsd", bytes(8) + box(b"av01", visual + children))
    trak = box(b"trak", box(b"mdia", box(b"minf", box(b"stbl", stsd))))
    return box(b"moov", trak)


def test_an_av1_init_segment_gives_its_codec_size_and_transfer():
    pq = cmaf.read_init_segment(init_segment(b"nclx" + struct.pack(">HHHB", 9, 16, 9, 0)))
    assert (pq.codecs, pq.width, pq.height, pq.transfer) == ("av01.0.08M.10", 1280, 720, 16)
    assert cmaf.VIDEO_RANGES.get(pq.transfer or 0) == "PQ"
    hlg = cmaf.read_init_segment(init_segment(b"nclx" + struct.pack(">HHHB", 9, 18, 9, 0)))
    assert cmaf.VIDEO_RANGES.get(hlg.transfer or 0) == "HLG"
    assert cmaf.read_init_segment(init_segment(None)).transfer is None
    assert cmaf.read_init_segment(init_segment(b"prof" + bytes(8))).transfer is None  # an ICC profile


def video(name: str, bandwidth: int, codecs: str, video_range: str | None = None) -> Rendition:
    return Rendition(
        name=name,
        type="video",
        playlist=f"{name}.m3u8",
        init=f"{name}_init.mp4",
        media_pattern=f"{name}_%05d.m4s",
        segments=[4.0, 4.0],
        bandwidth=bandwidth,
        average_bandwidth=bandwidth,
        codecs=codecs,
        width=1280,
        height=720,
        video_range=video_range,
    )


AUDIO = Rendition(
    name="audio",
    type="audio",
    playlist="audio.m3u8",
    init="audio_init.mp4",
    media_pattern="audio_%05d.m4s",
    segments=[4.0, 4.0],
    bandwidth=130_000,
    average_bandwidth=128_000,
    codecs="mp4a.40.2",
)


def variants(master: str) -> dict[str, str]:
    lines = master.splitlines()
    return {
        uri: inf for inf, uri in zip(lines, lines[1:], strict=False) if inf.startswith("#EXT-X-STREAM-INF")
    }


def test_the_master_says_each_variants_range_when_one_is_hdr():
    renditions = [
        video("720p", 3_000_000, "avc1.64001f"),
        video("av1-720p", 1_500_000, "av01.0.08M.10", "PQ"),
        video("hevc-720p", 2_000_000, "hvc1.2.4.L120.90", "HLG"),
        AUDIO,
    ]
    v = variants(hls_master(renditions))
    assert 'CODECS="av01.0.08M.10,mp4a.40.2"' in v["av1-720p.m3u8"] and "VIDEO-RANGE=PQ" in v["av1-720p.m3u8"]
    assert "VIDEO-RANGE=HLG" in v["hevc-720p.m3u8"] and "VIDEO-RANGE=SDR" in v["720p.m3u8"]
    sdr_only = hls_master(
        [video("720p", 3_000_000, "avc1.64001f"), video("av1-720p", 1_500_000, "av01.0.08M.08"), AUDIO]
    )
    assert "VIDEO-RANGE" not in sdr_only and 'CODECS="av01.0.08M.08,mp4a.40.2"' in sdr_only


NS = {"d": "urn:mpeg:dash:schema:mpd:2011"}


def test_the_mpd_has_a_set_per_codec_and_range_with_its_colour_properties():
    renditions = [
        video("720p", 3_000_000, "avc1.64001f"),
        video("av1-720p", 1_500_000, "av01.0.08M.10", "PQ"),
        video("av1-360p", 500_000, "av01.0.04M.10", "PQ"),
        video("hevc-720p", 2_000_000, "hvc1.2.4.L120.90", "HLG"),
        AUDIO,
    ]
    mpd = ET.fromstring(dash_mpd(renditions))
    sets = mpd.findall(".//d:AdaptationSet[@contentType='video']", NS)
    reps = [[r.get("id") for r in s.findall("d:Representation", NS)] for s in sets]
    assert reps == [["720p"], ["av1-360p", "av1-720p"], ["hevc-720p"]]  # H.264 first

    def props(s: ET.Element) -> list[tuple[str, str, str]]:
        return [
            (p.tag.split("}")[1], p.get("schemeIdUri", "").rsplit(":", 1)[1], p.get("value", ""))
            for p in s
            if p.tag.endswith("Property")
        ]

    assert props(sets[0]) == []
    assert ("EssentialProperty", "TransferCharacteristics", "16") in props(sets[1])
    assert ("SupplementalProperty", "TransferCharacteristics", "18") in props(sets[2])
    assert ("EssentialProperty", "ColourPrimaries", "9") in props(sets[1])
    # descriptors before the representations (schema order)
    tags = [c.tag.split("}")[1] for c in sets[1]]
    assert tags.index("Representation") > max(i for i, t in enumerate(tags) if t.endswith("Property"))


def av1_package(info: MediaInfo, **options) -> PackagePlan:
    job = JobRequested(job_id="p1", kind="package", source_key="a.mp4", preset="abr-av1", **options)
    return plan_package(normalize_job(job), info)


AV1_RUNGS = ["av1-1080p", "av1-720p", "av1-360p"]


@pytest.mark.parametrize("fps", [24.0, 25.0, 30.0, 50.0, 60.0, 10.0])
def test_av1_rungs_are_chunked_when_a_gop_is_a_whole_number_of_frames(fps):
    plan = av1_package(msgspec.structs.replace(SDR, fps=fps))  # 60 s: chunked
    assert len(plan.spans) > 1
    # every rung, AV1 and H.264, cut at the same times; none encoded whole (the source has no sound)
    assert sorted(plan.chunked_names) == sorted([*AV1_RUNGS, "720p", "360p"])
    assert [c for c in plan.children if c.kind == "rendition"] == [] and plan.notes == []
    for name in AV1_RUNGS:
        assert [c.chunk for c in plan.chunks_of(name)] == plan.spans
    # the first window holds every rung's first chunk: the package plays once they are up
    assert {c.rendition for c in plan.jobs[: lead(with_shares(plan))]} == set(plan.chunked_names)


@pytest.mark.parametrize("fps", [30000 / 1001, 24000 / 1001, 60000 / 1001, None])
def test_av1_rungs_are_encoded_whole_when_a_gop_is_not_a_whole_number_of_frames(fps):
    plan = av1_package(msgspec.structs.replace(SDR, fps=fps))
    assert plan.spans and plan.chunked_names == ["720p", "360p"]  # the H.264 rungs, in chunks
    whole = [c.rendition for c in plan.children if c.kind == "rendition"]
    assert whole == AV1_RUNGS  # heaviest first, as every rung
    assert all(c.chunk is None for c in plan.jobs if c.rendition in whole)
    assert {c.rendition for c in plan.jobs if c.chunk is not None} == {"720p", "360p"}
    # why, in the plan (logged when it is made)
    (note,) = plan.notes
    assert note.startswith("rungs av1-1080p, av1-720p, av1-360p encoded whole")
    assert ("59.94 frames" in note) if fps == 30000 / 1001 else True
    assert ("frame rate is unknown" in note) == (fps is None)


def test_an_unchunked_av1_package_runs_each_rung_whole_without_a_note():
    for info, options in ((SDR, {"chunk_seconds": 0}), (msgspec.structs.replace(SDR, duration=3.0), {})):
        plan = av1_package(info, **options)
        assert not plan.spans and not plan.chunked and plan.notes == []
        whole = sorted(c.rendition or "" for c in plan.children if c.kind == "rendition")
        assert whole == sorted([*AV1_RUNGS, "720p", "360p"])


def test_the_grid_needs_whole_frames_per_gop_and_whole_gops_per_segment():
    on_grid = cmaf.key_frame_interval_on_grid
    assert on_grid(AV1, msgspec.structs.replace(SDR, fps=12.5))  # 25 frames a 2 s GOP
    assert not on_grid(AV1, msgspec.structs.replace(SDR, fps=29.97))
    odd = msgspec.structs.replace(AV1, hls_segment_seconds=3)  # 1.5 GOPs: a chunk starts mid-GOP
    assert not on_grid(odd, SDR)


@settings(max_examples=200, deadline=None)
@given(
    frames=st.integers(min_value=1, max_value=600),
    gop=st.sampled_from([0.5, 1.0, 2.0, 4.0]),
    per_segment=st.integers(min_value=1, max_value=4),
)
def test_a_rate_of_whole_frames_per_gop_is_on_the_grid_and_one_a_frame_off_is_not(frames, gop, per_segment):
    """As ffprobe's rational rates reach the probe: a float, here ``frames / gop`` and a rate 1/1001 off."""
    preset = msgspec.structs.replace(AV1, gop_seconds=gop, hls_segment_seconds=int(gop * per_segment) or None)
    assume(preset.hls_segment_seconds and preset.hls_segment_seconds == gop * per_segment)
    assert cmaf.key_frame_interval_on_grid(preset, msgspec.structs.replace(SDR, fps=frames / gop))
    ntsc = frames / gop * 1000 / 1001
    assert not cmaf.key_frame_interval_on_grid(preset, msgspec.structs.replace(SDR, fps=ntsc))
