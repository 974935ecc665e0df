from mpr_common.mediainfo import INPUT_FORMATS, ffprobe_args, parse_ffprobe

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
