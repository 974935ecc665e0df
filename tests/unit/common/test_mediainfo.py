import json
import subprocess
import sys
from pathlib import Path

import pytest

from mpr_common.mediainfo import (
    INPUT_FORMATS,
    ProbeError,
    child_setup,
    ffprobe_args,
    parse_ffprobe,
    probe_result,
)

FFPROBE = {
    "streams": [
        {
            "codec_type": "video",
            "codec_name": "h264",
            "width": 1920,
            "height": 1080,
            "avg_frame_rate": "30000/1001",
            "r_frame_rate": "30000/1001",
            "pix_fmt": "yuv420p",
        },
        {"codec_type": "audio", "codec_name": "aac", "sample_rate": "48000", "channels": 2},
        {"codec_type": "video", "codec_name": "mjpeg", "disposition": {"attached_pic": 1}},
    ],
    "format": {"format_name": "mov,mp4,m4a,3gp,3g2,mj2", "duration": "60.060000", "bit_rate": "5000000"},
}


def test_parse_ffprobe():
    info = parse_ffprobe(FFPROBE)
    assert (info.video_codec, info.width, info.height, info.fps) == ("h264", 1920, 1080, 29.97)
    assert (info.audio_codec, info.sample_rate, info.channels) == ("aac", 48000, 2)
    assert info.duration == 60.06 and info.bit_rate == 5_000_000 and info.streams == 3


def test_parse_audio_only_and_missing_values():
    info = parse_ffprobe(
        {
            "streams": [
                {"codec_type": "audio", "codec_name": "flac", "duration": "4.5", "sample_rate": "N/A"}
            ],
            "format": {"duration": "N/A"},
        }
    )
    assert info.video_codec is None and info.duration == 4.5 and info.sample_rate is None


def test_ffprobe_args_restrict_protocols_and_formats():
    args = ffprobe_args("http://x/a.mp4")
    assert args[args.index("-protocol_whitelist") + 1] == "http,https,tcp,tls,crypto"
    assert "hls" not in INPUT_FORMATS.split(",") and "concat" not in INPUT_FORMATS.split(",")
    assert args[-2:] == ["-i", "http://x/a.mp4"]


URL = "https://s3.local/in/a.mp4?X-Amz-Signature=secret"


def test_probe_result_of_a_clean_run_is_the_parsed_probe():
    assert probe_result(0, json.dumps(FFPROBE).encode(), b"", URL) == parse_ffprobe(FFPROBE)


@pytest.mark.parametrize(
    ("returncode", "stdout", "stderr", "error"),
    [
        (1, b"", f"{URL}: Invalid data found when processing input\n".encode(), "a.mp4: Invalid data found"),
        (1, b"", b"", "ffprobe exited with 1"),
        (0, b"not json", b"", "ffprobe printed no JSON"),
        (0, b'{"streams": [], "format": {}}', b"", "no audio or video stream found"),
    ],
)
def test_probe_result_of_a_failed_run_names_the_object_never_the_url(returncode, stdout, stderr, error):
    with pytest.raises(ProbeError) as caught:
        probe_result(returncode, stdout, stderr, URL, name="a.mp4")
    assert str(caught.value).startswith(error)
    assert "secret" not in str(caught.value) and "s3.local" not in str(caught.value)


def test_probe_result_without_a_name_keeps_the_url_without_its_query():
    with pytest.raises(ProbeError, match="^https://s3.local/in/a.mp4: Server returned 404") as caught:
        probe_result(8, b"", f"{URL}: Server returned 404 Not Found".encode(), URL)
    assert "secret" not in str(caught.value)


@pytest.mark.skipif(
    not sys.platform.startswith("linux") or "THP_enabled" not in Path("/proc/self/status").read_text(),
    reason="per-process transparent huge pages are a Linux 6.x flag",
)
def test_a_child_runs_without_transparent_huge_pages():
    """x264's huge-page buffers cost each FFmpeg start more than they save (see child_setup)."""
    status = subprocess.run(
        ["cat", "/proc/self/status"], preexec_fn=child_setup(), capture_output=True, text=True, check=True
    ).stdout
    assert "THP_enabled:\t0" in status
