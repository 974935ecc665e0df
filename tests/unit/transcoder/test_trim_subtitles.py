"""A trim's subtitles (mpr_transcoder.kinds.trim.subtitles): which streams and sidecars a container keeps, the cues
cut to the output's range and moved to its timeline, the languages MP4 writes, and the FFmpeg steps'
argument lists."""

from __future__ import annotations

import asyncio
from fractions import Fraction
from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

from mpr_common.audio_tracks import language_tag
from mpr_common.events import JobRequested, MediaInfo, SubtitleStream, SubtitleTrack
from mpr_common.jobs import normalize_job
from mpr_common.presets import PRESETS
from mpr_transcoder import webvtt
from mpr_transcoder.kinds import trim as trim_kind
from mpr_transcoder.kinds.base import JobContext
from mpr_transcoder.kinds.trim import subtitles
from mpr_transcoder.kinds.trim.codecs import container_for
from mpr_transcoder.kinds.trim.planning import copy_origin, first_packet_time, parse_cut_probe
from mpr_transcoder.limits import Limits
from mpr_transcoder.steps import StepRunner
from mpr_transcoder.subtitle_sources import SubtitleInput
from mpr_transcoder.webvtt import Cue

STREAMS = [
    SubtitleStream(index=0, codec="subrip", language="fr", title="Français", default=True),
    SubtitleStream(index=1, codec="hdmv_pgs_subtitle", language="en"),
    SubtitleStream(index=2, codec="ass", forced=True),
]
INFO = MediaInfo(duration=6.0, subtitle_streams=STREAMS)
TEXT = [STREAMS[0], STREAMS[2]]


SIDECAR = SubtitleInput(
    SubtitleTrack(key="f/t.en.srt", language="en"), "https://s3/f/t.en.srt?sig", "f/t.en.srt", True, 0
)


def test_text_streams_then_sidecars_are_kept_by_containers_that_hold_subtitles_only(tmp_path):
    for suffix, codec in ((".mp4", "mov_text"), (".mov", "mov_text"), (".mkv", "srt"), (".webm", "webvtt")):
        container = container_for(Path(f"out{suffix}"))
        assert container.subtitle_codec == codec
        kept = subtitles.kept(INFO, [SIDECAR], container, tmp_path)
        assert kept.streams == TEXT  # the PGS stream cannot become text
        assert [(t.stem, t.language, t.default) for t in kept.tracks] == [
            ("stream-0", "fr", True),
            ("stream-2", None, False),
            ("sidecar-0", "en", False),
        ]
    for suffix in (".ts", ".avi", ".m4a", ".mp3", ".wav"):
        assert subtitles.kept(INFO, [SIDECAR], container_for(Path(f"out{suffix}")), tmp_path).tracks == []


def test_streams_are_converted_in_one_read_and_each_sidecar_from_its_file(tmp_path):
    runs = subtitles.kept(INFO, [SIDECAR], container_for(Path("o.mp4")), tmp_path).conversions(
        "https://s3/x", "https", 5.0
    )
    assert len(runs) == 2
    assert runs[0][runs[0].index("-i") + 1] == "https://s3/x"
    sidecar = runs[1]
    assert sidecar[sidecar.index("-i") + 1] == SIDECAR.url
    assert sidecar[sidecar.index("-format_whitelist") + 1] == "srt,webvtt"  # never guessed from its content
    assert sidecar[-1] == str(tmp_path / "sidecar-0-source.vtt")
    only_sidecars = subtitles.kept(MediaInfo(), [SIDECAR], container_for(Path("o.mp4")), tmp_path)
    assert len(only_sidecars.conversions("u", "https", 5.0)) == 1  # no read of the source


def test_cues_before_the_range_go_those_across_its_edges_are_cut_and_all_move_by_its_origin():
    cues = [Cue(300, 1200, "before"), Cue(1500, 2800, "start"), Cue(3200, 4100, "in"), Cue(4600, 5600, "end")]
    # the range 2.0-5.0 s, its output starting with a sound packet 5 ms early, lasting 3.016 s
    assert subtitles.trim_cues(cues, 2.0, 1.995166, 3.016) == [
        Cue(5, 805, "start"),
        Cue(1205, 2105, "in"),
        Cue(2605, 3016, "end"),  # cut at the output's end (its last frame's, within one of 5.0 s)
    ]
    # ... and starting with a frame 21 ms late: nothing is shown before the output's time 0
    assert subtitles.trim_cues(cues, 2.0, 2.021, 2.979)[0] == Cue(0, 779, "start")


@given(st.text(max_size=12))
def test_a_language_in_mp4_is_three_letters_of_iso_639_2_or_und(value):
    tag = language_tag(value)
    code = subtitles.container_language(tag)
    assert len(code) == 3 and code.isascii()
    if tag is None:
        assert code == "und"


def test_languages_are_the_terminological_codes():
    assert [subtitles.container_language(t) for t in ("fr", "de", "pt-br", "haw", None, "en")] == [
        "fra",
        "deu",
        "por",
        "haw",
        "und",
        "eng",
    ]
    assert subtitles.container_language(language_tag("fre")) == "fra"


def test_one_read_converts_every_stream_from_the_sources_start_to_past_the_end(tmp_path):
    args = subtitles.convert_args("https://s3/x.mkv", "https,tls,tcp", TEXT, 5.0, tmp_path)
    assert "-ss" not in args  # a cue shown in the range may start long before it
    i = args.index("-i")
    assert args[args.index("-to") + 1] == "5.500" and args.index("-to") < i  # the input stops there
    outs = [a for a in args if a.endswith(".vtt")]
    assert outs == [str(tmp_path / "stream-0-source.vtt"), str(tmp_path / "stream-2-source.vtt")]
    assert [args[j + 1] for j, a in enumerate(args) if a == "-map"] == ["0:s:0", "0:s:2"]
    assert "-to" not in subtitles.convert_args("u", "https", TEXT, float("inf"), tmp_path)


def test_the_mux_copies_the_cut_and_adds_each_track_with_its_tags(tmp_path):
    out = tmp_path / "output.mp4"
    tracks = subtitles.kept(INFO, [SIDECAR], container_for(out), tmp_path).tracks
    args = subtitles.mux_args(tmp_path / "cut.mp4", container_for(out), tracks, tmp_path, out, 1000)
    inputs = [args[j + 1] for j, a in enumerate(args) if a == "-i"]
    assert inputs == [str(tmp_path / n) for n in ("cut.mp4", "stream-0.vtt", "stream-2.vtt", "sidecar-0.vtt")]
    assert [args[j + 1] for j, a in enumerate(args) if a == "-map"] == ["0", "1:0", "2:0", "3:0"]
    assert args[args.index("-c") + 1] == "copy" and args[args.index("-c:s") + 1] == "mov_text"
    tags = [(a, args[j + 1]) for j, a in enumerate(args) if a.startswith(("-metadata:s", "-disposition"))]
    assert tags == [
        ("-metadata:s:s:0", "language=fra"),
        ("-metadata:s:s:0", "title=Français"),
        ("-disposition:s:0", "default"),
        ("-metadata:s:s:1", "language=und"),
        ("-disposition:s:1", "forced"),
        ("-metadata:s:s:2", "language=eng"),
        ("-disposition:s:2", "0"),
    ]
    assert args[-3:] == ["-f", "mp4", str(out)] and "+faststart" in args and "1000" in args
    # the cut's timestamps as they are: its first frame may be after its time 0, where the cues start
    assert "-copyts" in args[: args.index("-i")]
    mkv = subtitles.mux_args(
        tmp_path / "cut.mkv", container_for(Path("o.mkv")), tracks[:1], tmp_path, out, None
    )
    assert mkv[mkv.index("-format_whitelist") + 1] == "matroska" and "-movflags" not in mkv


# --- a trim by one command (copy, re-encode): where its output starts, and its steps --------------------

# FFmpeg 5.1's framecrc of a copy cut at 2.3 s of an MP4 (H.264 with B-frames, AAC): the sound's first
# packet (stream 1) is listed before the picture's key frame, shown 0.3 s before the seek.
FRAMECRC = """#extradata 0:       44, 0x10760d8b
#software: Lavf59.27.100
#tb 0: 1/12800
#media_type 0: video
#tb 1: 1/44100
#media_type 1: audio
1,     -17462,     -17462,     1024,      167, 0xe01e5457
0,      -4864,      -3840,      512,     2892, 0x225aa828
0,      -4352,      -2304,      512,      699, 0x9390613f, F=0x0
"""


def test_a_copys_first_packet_is_read_from_its_listing_in_its_own_time_base():
    assert first_packet_time(FRAMECRC) == Fraction(-3840, 12800)
    assert first_packet_time(FRAMECRC, 1) == Fraction(-17462, 44100)
    assert first_packet_time(FRAMECRC, 2) is None  # no such stream
    assert first_packet_time("#tb 0: 1/1000\n0, 5, -9223372036854775808, 1, 2, 0x0\n") is None  # no pts
    assert first_packet_time("0, 5, 7, 1, 2, 0x0\n") is None  # no time base


def test_the_outputs_first_packet_and_duration_are_read_from_ffprobe():
    probe = '{"packets": [{"pts_time": "0.096016"}], "format": {"duration": "2.497000"}}'
    assert parse_cut_probe(probe) == (0.096016, 2.497)
    assert parse_cut_probe('{"format": {"duration": "N/A"}}') == (None, None)
    assert parse_cut_probe("not json") == (None, None)


def test_a_copys_time_0_is_where_its_muxer_put_its_lowest_decode_time():
    # The key frame at 2.0 s is at 0.096016 s in the output: its time 0 is the source's 1.903984 s (the
    # sound's first packet), neither the key frame (2.0) nor the seek (2.3).
    assert copy_origin(2.3, Fraction(-3840, 12800), 0.096016) == 1.903984
    assert copy_origin(2.3, None, 0.1) == 2.3 == copy_origin(2.3, Fraction(0), None)


@given(st.text(max_size=300))
def test_any_listing_or_probe_text_gives_a_time_or_none(text):
    assert first_packet_time(text) is None or isinstance(first_packet_time(text), Fraction)
    first, duration = parse_cut_probe(text)
    assert all(v is None or isinstance(v, float) for v in (first, duration))


SOURCE = MediaInfo(
    duration=6.0, video_codec="h264", audio_codec="aac", subtitle_streams=[STREAMS[0], STREAMS[1]]
)
SRC_VTT = "WEBVTT\n\n00:00:01.500 --> 00:00:02.800\nAcross\n\n00:00:04.600 --> 00:00:05.600\nEnd\n"


def write_outputs(args: list[str]) -> None:
    """What an FFmpeg command of a trim writes: its WebVTT conversions (SRC_VTT), its packet listing
    (FRAMECRC) and its media."""
    for i, a in enumerate(args[1:], 1):
        if a.endswith(".vtt") and args[i - 1] != "-i":
            Path(a).write_text(SRC_VTT)
        elif a.endswith(".crc"):
            Path(a).write_text(FRAMECRC)
        elif args[i - 1] != "-i" and "/output." in a:
            Path(a).write_bytes(b"media")


def run_trim(tmp_path, monkeypatch, preset: str, output_key: str = "f/cut.mp4", sidecars=()):
    """Plan a trim of 2.3-4.3 s and run its steps with FFmpeg and ffprobe replaced: each command's
    outputs are written as FFmpeg would (the copy's listing as FRAMECRC, the key frame at 0.096016 s)."""
    job = normalize_job(
        JobRequested(
            job_id="j",
            kind="trim",
            source_key="f/t.mp4",
            output_key=output_key,
            preset=preset,
            start=2.3,
            end=4.3,
        )  # fmt: skip
    )
    ctx = JobContext(
        job, PRESETS[preset], "https://s3/f/t.mp4", SOURCE, tmp_path, 10**9, Limits(), sidecars=sidecars
    )
    commands: list[list[str]] = []

    async def ffmpeg(args, progress, **_):
        commands.append(args)
        write_outputs(args)
        return []

    async def ffprobe(args, timeout, what):
        assert args[-1].endswith(("/cut/output.mp4", "/cut/output.mkv")), args
        return '{"packets": [{"pts_time": "0.096016"}], "format": {"duration": "2.496"}}'

    monkeypatch.setattr(trim_kind, "ffprobe_output", ffprobe)
    work = trim_kind.plan(ctx)
    runner = StepRunner(Limits(), asyncio.Event(), {}, lambda *_: None, work.expected, ffmpeg)
    asyncio.run(work.run(runner))
    return work, commands


def test_a_copy_trim_keeps_the_text_streams_cut_to_what_it_wrote_from_its_first_packet(tmp_path, monkeypatch):
    work, commands = run_trim(tmp_path, monkeypatch, "copy")
    assert work.main == tmp_path / "out" / "output.mp4" and work.main.exists()
    cut, convert, mux = commands[0], commands[1], commands[-1]
    assert len(commands) == 3 and "framecrc" in cut and convert[convert.index("-map") + 1] == "0:s:0"
    assert cut[cut.index("-avoid_negative_ts") + 1] == "make_zero"
    cut_file = str(tmp_path / "subs" / "cut" / "output.mp4")
    # the cut as the preset makes it, then its first packets
    assert cut.index(cut_file) < cut.index("framecrc") and cut[-1].endswith(".crc")
    assert [mux[i + 1] for i, a in enumerate(mux) if a == "-i"][0] == cut_file
    assert mux[-1] == str(work.main) and "-map_metadata" not in mux  # the source's tags, as without subtitles
    # time 0 is the source's 1.903984 s; what the output shows ends 2.496 s later (4.399984 s)
    assert webvtt.parse((tmp_path / "subs" / "stream-0.vtt").read_text()) == [Cue(0, 896, "Across")]


def test_a_reencoding_trim_keeps_streams_and_sidecars_from_its_start(tmp_path, monkeypatch):
    work, commands = run_trim(tmp_path, monkeypatch, "h264-480p", sidecars=(SIDECAR,))
    cut, mux = commands[0], commands[-1]
    assert "framecrc" not in cut and cut[cut.index("-ss") + 1] == "2.300"
    assert len(commands) == 4  # the encode, the stream's conversion, the sidecar's, the mux
    assert [mux[i + 1] for i, a in enumerate(mux) if a == "-map"] == ["0", "1:0", "2:0"]
    assert mux[mux.index("-metadata:s:s:1") + 1] == "language=eng"
    # time 0 is the start, 2.3 s: the cue across it is cut to it, the one across the end to 2.496 s
    for name in ("stream-0", "sidecar-0"):
        assert webvtt.parse((tmp_path / "subs" / f"{name}.vtt").read_text()) == [
            Cue(0, 500, "Across"),
            Cue(2300, 2496, "End"),
        ]


def test_a_trim_into_a_type_without_subtitles_or_without_text_keeps_one_command(tmp_path, monkeypatch):
    work, commands = run_trim(tmp_path, monkeypatch, "copy", output_key="f/cut.avi")
    assert len(commands) == 1 and commands[0][-1] == str(work.main) == str(tmp_path / "out" / "output.avi")
    job = normalize_job(JobRequested(job_id="j", kind="trim", source_key="f/t.mp4", preset="copy", start=1))
    ctx = JobContext(
        job, PRESETS["copy"], "u", MediaInfo(duration=6.0, video_codec="h264"), tmp_path, 1, Limits()
    )
    assert trim_kind.plan(ctx).main == tmp_path / "out" / "output.mp4"
