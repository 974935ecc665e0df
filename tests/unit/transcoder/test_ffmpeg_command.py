from pathlib import Path

import pytest

from mpr_common.events import JobRequested, MediaInfo
from mpr_common.jobs import normalize_job
from mpr_common.mediainfo import looks_like_network_error
from mpr_common.presets import PRESETS
from mpr_transcoder.ffmpeg.argv import output_slack
from mpr_transcoder.ffmpeg.progress import parse_progress_block
from mpr_transcoder.kinds.single_output import build_plan

AV = MediaInfo(duration=60.0, video_codec="h264", width=1920, height=1080, audio_codec="aac")
URL = "http://127.0.0.1:9000/in/a.mp4?X-Amz-Signature=abc"


def plan(tmp_path: Path, info: MediaInfo = AV, **kw):
    job = normalize_job(JobRequested(job_id="j", source_key="a.mp4", **kw))
    return build_plan(job, PRESETS[job.preset], URL, info, tmp_path / "out", 10**9)


def opt(args: list[str], name: str) -> str:
    return args[args.index(name) + 1]


def test_common_safety_options(tmp_path):
    p = plan(tmp_path, kind="transcode")
    a = p.args
    assert a[0] == "ffmpeg" and "-nostdin" in a
    i = a.index("-i")
    assert a[i + 1] == URL
    # whitelists are input options: before -i
    assert a.index("-protocol_whitelist") < i and a.index("-format_whitelist") < i
    assert "file" not in opt(a, "-protocol_whitelist").split(",")
    assert opt(a, "-fs") == str(10**9)
    assert a[-1] == str(p.main_output) and p.main_output.parent == tmp_path / "out"


def test_transcode_h264(tmp_path):
    a = plan(tmp_path, kind="transcode", preset="h264-480p").args
    assert opt(a, "-c:v") == "libx264" and opt(a, "-crf") == "24" and opt(a, "-c:a") == "aac"
    assert "min(480,ih)" in opt(a, "-vf")
    assert opt(a, "-movflags") == "+faststart"


def test_trim_seeks_on_input_and_limits_duration(tmp_path):
    p = plan(tmp_path, kind="trim", start=10, end=25, preset="copy")
    a = p.args
    assert a.index("-ss") < a.index("-i") and opt(a, "-ss") == "10.000"
    assert a.index("-t") > a.index("-i") and opt(a, "-t") == "15.000"
    assert opt(a, "-c") == "copy"
    assert p.expected_duration == 15.0


def test_trim_past_the_end_expects_what_exists(tmp_path):
    p = plan(tmp_path, kind="trim", start=50, end=90)
    assert p.expected_duration == 10.0
    # FFmpeg writes at most what the probe found after the start, plus slack: not the 40 s asked for.
    assert opt(p.args, "-t") == f"{10 + output_slack(60.0):.3f}"


def test_output_duration_is_bounded_by_the_probed_duration(tmp_path):
    """Frames hours apart, or timestamps that jump, never make FFmpeg write more than the source lasts."""
    assert output_slack(60.0) == 10.0 and output_slack(3600.0) == 180.0
    for kind in ("transcode", "audio", "hls"):
        a = plan(tmp_path, kind=kind).args
        assert opt(a, "-t") == "70.000" and a.index("-t") > a.index("-i"), kind
    # Unknown duration: at most the longest source accepted.
    job = normalize_job(JobRequested(job_id="j", source_key="a.mp4", kind="transcode"))
    unknown = MediaInfo(video_codec="h264", width=640, height=360)
    p = build_plan(job, PRESETS[job.preset], URL, unknown, tmp_path / "u", 10**9, max_source_duration=7200.0)
    assert opt(p.args, "-t") == "7200.000"
    assert "-t" not in build_plan(job, PRESETS[job.preset], URL, unknown, tmp_path / "v", 10**9).args
    # A thumbnail is one frame.
    assert "-t" not in plan(tmp_path, kind="thumbnail").args


def test_thumbnail_defaults_to_ten_percent_capped(tmp_path):
    a = plan(tmp_path, kind="thumbnail").args
    assert opt(a, "-ss") == "6.000" and opt(a, "-frames:v") == "1" and opt(a, "-vf") == "scale=320:-2"
    long = MediaInfo(duration=3600.0, video_codec="h264")
    assert opt(plan(tmp_path, long, kind="thumbnail").args, "-ss") == "10.000"


def test_thumbnail_of_audio_is_refused(tmp_path):
    with pytest.raises(ValueError, match="no video"):
        plan(tmp_path, MediaInfo(duration=5, audio_codec="flac"), kind="thumbnail")


def test_audio_extraction(tmp_path):
    a = plan(tmp_path, kind="audio", preset="wav-16k-mono").args
    assert "-vn" in a and opt(a, "-ar") == "16000" and opt(a, "-ac") == "1"
    with pytest.raises(ValueError, match="no audio"):
        plan(tmp_path, MediaInfo(duration=5, video_codec="h264"), kind="audio")


def test_hls(tmp_path):
    p = plan(tmp_path, kind="hls")
    a = p.args
    assert opt(a, "-f") == "hls" and opt(a, "-hls_playlist_type") == "vod"
    # Segments carry the job's id: two HLS jobs writing to one folder never collide.
    assert Path(opt(a, "-hls_segment_filename")).name == "j_%05d.ts"
    assert p.main_output.name == "index.m3u8"
    assert opt(a, "-force_key_frames") == "expr:gte(t,n_forced*4)"


def test_audio_only_source_transcode_skips_video_options(tmp_path):
    a = plan(tmp_path, MediaInfo(duration=5, audio_codec="mp3"), kind="transcode").args
    assert "-vf" not in a and "-c:v" not in a and opt(a, "-c:a") == "aac"


def test_progress_block_parsing():
    rep = parse_progress_block(
        ["frame=10", "total_size=48", "out_time_us=2500000", "speed=1.75x", "progress=continue"]
    )
    assert rep.out_time == 2.5 and rep.speed == 1.75 and not rep.done
    assert rep.frame == 10 and rep.total_size == 48  # what the stall limit watches besides out_time
    rep = parse_progress_block(["out_time_us=N/A", "speed=N/A", "total_size=N/A", "progress=end"])
    assert rep.out_time is None and rep.speed is None and rep.done and rep.total_size is None


def test_network_error_classification():
    assert looks_like_network_error("http://x: Connection refused")
    assert looks_like_network_error("Server returned 503 Service Unavailable")
    assert not looks_like_network_error("moov atom not found\nInvalid data found when processing input")
