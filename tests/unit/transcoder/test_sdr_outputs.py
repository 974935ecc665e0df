"""Every single-output video preset encodes SDR (H.264, VP9 at 8 bits), so an HDR source's transcode
(whole or in chunks) and its animated preview are tone-mapped to BT.709 after scaling, and tagged so;
an SDR source's commands carry neither the mapping nor the tags."""

from __future__ import annotations

from pathlib import Path

import msgspec
import pytest

from mpr_common.events import JobRequested, MediaInfo, PreviewOptions
from mpr_common.jobs import normalize_job
from mpr_common.presets import PRESETS
from mpr_transcoder.ffmpeg.argv import input_args
from mpr_transcoder.kinds.colour import SDR_TAGS, to_sdr_filter
from mpr_transcoder.kinds.preview import preview_args
from mpr_transcoder.kinds.single_output import build_plan
from mpr_transcoder.kinds.transcode.parts import video_chunk_args

SDR = MediaInfo(duration=8.0, video_codec="h264", width=1920, height=1080, audio_codec="aac", streams=2)
HDR10 = MediaInfo(
    duration=8.0,
    video_codec="hevc",
    width=1920,
    height=1080,
    pix_fmt="yuv420p10le",
    audio_codec="aac",
    streams=2,
    color_transfer="smpte2084",
    color_primaries="bt2020",
    color_space="bt2020nc",
)
HLG = msgspec.structs.replace(HDR10, color_transfer="arib-std-b67")
URL = "http://s3.test/in/a.mp4"


def has_tags(args: list[str]) -> bool:
    return any(args[i : i + len(SDR_TAGS)] == list(SDR_TAGS) for i in range(len(args)))


def transcode_args(preset: str, info: MediaInfo, tmp_path: Path) -> list[str]:
    job = normalize_job(JobRequested(job_id="t", kind="transcode", source_key="a.mp4", preset=preset))
    return build_plan(job, PRESETS[preset], URL, info, tmp_path, 10**9).args


@pytest.mark.parametrize("preset", ["h264-720p", "vp9-720p"])
@pytest.mark.parametrize("info", [HDR10, HLG], ids=["hdr10", "hlg"])
def test_an_hdr_sources_transcode_is_tone_mapped_after_scaling_and_tagged_bt709(preset, info, tmp_path):
    to_sdr = to_sdr_filter(info)
    assert to_sdr is not None
    args = transcode_args(preset, info, tmp_path)
    vf = args[args.index("-vf") + 1]
    assert to_sdr in vf
    assert vf.index("scale=") < vf.index(to_sdr)  # fewer pixels to map
    assert has_tags(args)


def test_an_sdr_sources_transcode_is_neither_mapped_nor_tagged(tmp_path):
    args = transcode_args("h264-720p", SDR, tmp_path)
    assert "tonemap" not in " ".join(args) and not has_tags(args)


def test_an_hdr_sources_chunks_are_mapped_as_the_whole_transcode_is():
    source = input_args(URL, 2.0, end=4.0)
    mapped = video_chunk_args(
        source, PRESETS["h264-720p"], Path("/w/c.mp4"), 1000, to_sdr=to_sdr_filter(HDR10)
    )
    vf = mapped[mapped.index("-vf") + 1]
    assert vf.endswith(str(to_sdr_filter(HDR10))) and has_tags(mapped)
    plain = video_chunk_args(source, PRESETS["h264-720p"], Path("/w/c.mp4"), 1000, to_sdr=to_sdr_filter(SDR))
    assert "tonemap" not in " ".join(plain) and not has_tags(plain)


def test_an_hdr_sources_preview_is_tone_mapped():
    mapped = preview_args(URL, HDR10, PreviewOptions(), Path("/w/p.webp"))
    graph = mapped[mapped.index("-filter_complex") + 1]
    assert graph.count(str(to_sdr_filter(HDR10))) == len(
        [a for a in mapped if a == "-i"]
    )  # every clip, after its scaling
    plain = preview_args(URL, SDR, PreviewOptions(), Path("/w/p.webp"))
    assert "tonemap" not in plain[plain.index("-filter_complex") + 1]
