"""A trim's subtitles (mpr_transcoder.kinds.trim.subtitles): which streams and sidecars a container keeps, the cues
cut to the output's range and moved to its timeline, the languages MP4 writes, and the FFmpeg steps'
argument lists."""

from __future__ import annotations

from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

from mpr_common.audio_tracks import language_tag
from mpr_common.events import MediaInfo, SubtitleStream, SubtitleTrack
from mpr_transcoder.kinds.trim import subtitles
from mpr_transcoder.kinds.trim.codecs import container_for
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
    mkv = subtitles.mux_args(
        tmp_path / "cut.mkv", container_for(Path("o.mkv")), tracks[:1], tmp_path, out, None
    )
    assert mkv[mkv.index("-format_whitelist") + 1] == "matroska" and "-movflags" not in mkv
