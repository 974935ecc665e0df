"""x264's per-frame statistics as FFmpeg's report file holds them: any line is a frame's values or
ignored, never an exception; frames come back in display order; the encoder's options are added without
losing the command's own x264 parameters."""

from __future__ import annotations

from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

from mpr_common.quality import PSNR_CAP
from mpr_transcoder.ffmpeg.runner import REPORT_LEVEL, report_env
from mpr_transcoder.quality import (
    FrameScore,
    display_order,
    measurable,
    parse_frame_line,
    read_report,
    with_encoder_stats,
)

LINE = (
    "[libx264 @ 0x561c88ea4740] frame=   1 QP=25.85 NAL=2 Slice:P Poc:8   I:131  P:136  SKIP:653  "
    "size=2377 bytes PSNR Y:40.67 U:39.79 V:39.33 SSIM Y:0.95215"
)


def test_a_frame_line_gives_its_values():
    f = parse_frame_line(LINE)
    assert f == FrameScore(coded=1, poc=8, intra=False, psnr=40.67, ssim=0.95215)


def test_identical_frames_and_lines_cut_short():
    same = LINE.replace("40.67", "100.00").replace("0.95215", "1.00000")
    assert parse_frame_line(same) == FrameScore(1, 8, False, PSNR_CAP, 1.0)
    assert parse_frame_line(LINE.replace("40.67", "inf")).psnr == PSNR_CAP  # type: ignore[union-attr]
    assert parse_frame_line(LINE[:60]) is None  # no statistics yet
    assert (
        parse_frame_line("[libx264 @ 0x1] frame I:1     Avg QP: 4.00  size:    61  PSNR Mean Y:100.00")
        is None
    )
    no_stats = LINE.split(" PSNR")[0]  # x264 without psnr/ssim (e.g. lossless)
    assert parse_frame_line(no_stats) is None


@given(st.text())
def test_any_line_is_a_frame_or_ignored(line):
    f = parse_frame_line(line)
    assert f is None or isinstance(f, FrameScore)


@given(st.text(alphabet="0123456789.:- PSNRYUVSIMQPocSlice[]@xlib264frame=inf\t", max_size=200))
def test_any_line_of_the_frame_lines_alphabet(text):
    for line in (text, LINE[:40] + text, f"[libx264 @ 0x1] frame= 3 {text}"):
        f = parse_frame_line(line)
        if f is not None:
            assert f.psnr is None or 0.0 <= f.psnr <= PSNR_CAP
            assert f.ssim is None or -1.0 <= f.ssim <= 1.0


def test_frames_in_display_order_across_idr_frames():
    # coding order of two GOPs: I0 P4 B2 B1 B3 | I0 P2 B1 (POC is twice the display slot since the IDR)
    pocs = [(0, True), (8, False), (4, False), (2, False), (6, False), (0, True), (4, False), (2, False)]
    frames = [FrameScore(i, poc, intra, float(i), None) for i, (poc, intra) in enumerate(pocs)]
    shown = [f.coded for f in display_order(frames)]
    assert shown == [0, 3, 2, 4, 1, 5, 7, 6]


def test_report_file(tmp_path: Path):
    report = tmp_path / "r.log"
    source = "  Stream #0:0(und): Video: h264 (High) (avc1 / 0x31637661), yuv420p, 1920x1080, 25 fps"
    output = (
        "  Stream #0:0: Video: h264 (avc1 / 0x31637661), yuv420p(progressive), 640x360 [SAR 1:1 DAR 16:9]"
    )
    lines = ["Input #0, mov", source, "Output #0, mp4, to 'o.mp4':", output, LINE, "garbage \udcff"]
    report.write_text("\n".join(lines), errors="surrogateescape")
    read = read_report(report)
    assert (read.width, read.height) == (640, 360)
    assert [f.psnr for f in read.frames] == [40.67]
    assert read_report(tmp_path / "missing.log").frames == []


def test_encoder_options():
    args = ["ffmpeg", "-i", "in", "-c:v", "libx264", "-crf", "23", "out.mp4"]
    assert measurable(args)
    added = with_encoder_stats(args)
    assert added[added.index("-x264-params") + 1] == "psnr=1:ssim=1:verbose=1"
    own = [*args[:-1], "-x264-params", "colorprim=bt709", "out.mp4"]
    assert with_encoder_stats(own).count("-x264-params") == 1
    assert "colorprim=bt709:psnr=1:ssim=1:verbose=1" in with_encoder_stats(own)
    assert not measurable(["ffmpeg", "-i", "in", "-c", "copy", "out.mp4"])
    assert not measurable(["ffmpeg", "-i", "in", "-c:v", "libx265", "out.mp4"])
    assert not measurable(["ffmpeg", "-i", "in", "-map", "0:a:0", "-vn", "-c:a", "aac", "out.m4a"])


def test_report_file_name_is_escaped():
    env = report_env(Path("/tmp/a:b%c/r.log"))
    assert env == {"FFREPORT": f"file=/tmp/a\\:b%%c/r.log:level={REPORT_LEVEL}"}
    assert report_env(None) is None
