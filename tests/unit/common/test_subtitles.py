"""Subtitle tracks: what ffprobe's streams say, which keys are sidecars, which tracks a package makes and
their names, a burn-in's track, and the request's options checked with field errors."""

from __future__ import annotations

import pytest

from mpr_common.events import JobRequested, SubtitleFile, SubtitleStream, SubtitleTrack
from mpr_common.jobs import JobRequestError, normalize_job
from mpr_common.mediainfo import parse_ffprobe
from mpr_common.subtitles import (
    burn_track,
    is_subtitle_rendition,
    select_subtitles,
    sidecar_language,
    sidecars,
)


def test_ffprobe_subtitle_streams_are_listed_with_language_title_and_dispositions():
    info = parse_ffprobe(
        {
            "format": {"duration": "6.0"},
            "streams": [
                {"codec_type": "video", "codec_name": "h264", "width": 320, "height": 180},
                {
                    "codec_type": "subtitle",
                    "codec_name": "subrip",
                    "tags": {"LANGUAGE": "eng"},
                    "disposition": {"default": 1, "forced": 0},
                },  # fmt: skip
                {
                    "codec_type": "subtitle",
                    "codec_name": "hdmv_pgs_subtitle",
                    "tags": {"language": "fre", "title": "Forced\nsigns"},
                    "disposition": {"forced": 1},
                },  # fmt: skip
                {"codec_type": "subtitle", "codec_name": "mov_text", "tags": "junk", "disposition": []},
            ],
        }
    )
    assert info.subtitle_streams == [
        SubtitleStream(index=0, codec="subrip", language="en", default=True),
        SubtitleStream(index=1, codec="hdmv_pgs_subtitle", language="fr", title="Forced signs", forced=True),
        SubtitleStream(index=2, codec="mov_text"),
    ]
    assert parse_ffprobe({"streams": [{"codec_type": "video"}]}).subtitle_streams == []


@pytest.mark.parametrize(
    ("key", "language"),
    [
        ("talks/talk.en.srt", "en"),
        ("talks/talk.fra.vtt", "fr"),
        ("talks/talk.pt-BR.SRT", "pt-br"),
        ("talks/talk.srt", None),  # no language
        ("talks/talk.en.ass", None),  # not SRT or WebVTT
        ("talks/talk.und.srt", None),
        ("talks/talk.en.forced.srt", None),
        ("other/talk.en.srt", None),  # another folder
        ("talks/talker.en.srt", None),  # another stem
        ("talks/talk.en/x.srt", None),
    ],
)
def test_a_sidecar_is_named_for_the_source_stem_and_a_language(key, language):
    assert sidecar_language("talks/talk.mp4", key) == language


def test_sidecars_are_taken_in_key_order():
    keys = ["a/t.mkv", "a/t.fr.vtt", "a/t.en.srt", "a/t.jpg", "a/t.de.txt"]
    assert sidecars("a/t.mkv", keys) == [
        SubtitleFile(key="a/t.en.srt", language="en"),
        SubtitleFile(key="a/t.fr.vtt", language="fr"),
    ]


STREAMS = [
    SubtitleStream(index=0, codec="subrip", language="en", title="English SDH"),
    SubtitleStream(index=1, codec="hdmv_pgs_subtitle", language="de"),
    SubtitleStream(index=2, codec="ass", language="en", default=True),
    SubtitleStream(index=3, codec="mov_text"),
]
FILES = [SubtitleFile(key="a/t.fr.vtt", language="fr")]


def test_every_text_track_becomes_a_rendition_and_bitmaps_are_noted():
    tracks, notes = select_subtitles(STREAMS, FILES, None)
    assert [(t.name, t.track.stream, t.track.key, t.track.label, t.track.default) for t in tracks] == [
        ("subs-en", 0, None, "English SDH", False),
        ("subs-en-2", 2, None, "en", True),
        ("subs-3", 3, None, None, False),
        ("subs-fr", None, "a/t.fr.vtt", "fr", False),
    ]
    assert all(is_subtitle_rendition(t.name) for t in tracks)
    assert notes == ["subtitle stream 1 (hdmv_pgs_subtitle) is not text: it cannot become WebVTT"]
    assert not is_subtitle_rendition("subs") and not is_subtitle_rendition("subs-EN")


def test_languages_pick_and_order_the_tracks_and_name_what_is_missing():
    tracks, _ = select_subtitles(STREAMS, FILES, ["fr", "en"])
    assert [t.name for t in tracks] == ["subs-fr", "subs-en", "subs-en-2"]
    with pytest.raises(
        JobRequestError, match=r"no subtitles in it, ja \(its subtitles' languages: de, en, fr\)"
    ):
        select_subtitles(STREAMS, FILES, ["en", "it", "ja"])
    with pytest.raises(JobRequestError, match="in de are pictures"):
        select_subtitles(STREAMS, FILES, ["de"])


def test_a_burn_in_takes_the_first_text_stream_of_its_language_else_a_sidecar():
    assert burn_track(STREAMS, FILES, "en") == SubtitleTrack(stream=0, language="en", label="English SDH")
    assert burn_track(STREAMS, FILES, "fr").key == "a/t.fr.vtt"
    with pytest.raises(JobRequestError, match="burn_subtitles: the source has no subtitles in ja"):
        burn_track(STREAMS, FILES, "ja")
    with pytest.raises(JobRequestError, match="pictures"):
        burn_track(STREAMS, FILES, "de")


def job(**kw) -> JobRequested:
    return normalize_job(JobRequested(job_id="j1", source_key="a/t.mkv", **kw))


def test_a_request_names_subtitle_files_and_languages_checked_once():
    j = job(
        kind="package", subtitles=[SubtitleFile(key="a/x.srt", language="ENG")], subtitle_languages=["fra"]
    )
    assert j.subtitles == [SubtitleFile(key="a/x.srt", language="en")] and j.subtitle_languages == ["fr"]
    assert job(kind="transcode", burn_subtitles="eng").burn_subtitles == "en"


@pytest.mark.parametrize(
    ("fields", "field", "message"),
    [
        (
            {"kind": "package", "subtitles": [SubtitleFile(key="a/x.ass", language="en")]},
            "subtitles",
            ".srt or .vtt",
        ),
        ({"kind": "package", "subtitles": [SubtitleFile(key="a/x.srt")]}, "subtitles", "language"),
        (
            {"kind": "package", "subtitles": [SubtitleFile(key="../x.srt", language="en")]},
            "subtitles",
            "subtitles: ",
        ),
        ({"kind": "package", "subtitle_languages": ["klingon"]}, "subtitle_languages", "not a language"),
        ({"kind": "package", "subtitle_languages": ["en", "eng"]}, "subtitle_languages", "twice"),
        ({"kind": "transcode", "subtitle_languages": ["en"]}, "subtitle_languages", "package jobs"),
        ({"kind": "package", "burn_subtitles": "en"}, "burn_subtitles", "transcode jobs"),
        ({"kind": "transcode", "burn_subtitles": "x1"}, "burn_subtitles", "not a language"),
        ({"kind": "transcode", "burn_subtitles": "en", "preset": "copy"}, "burn_subtitles", "re-encodes"),
    ],
)
def test_bad_subtitle_options_are_field_errors(fields, field, message):
    with pytest.raises(JobRequestError, match=message) as err:
        job(**fields)
    assert err.value.field == field
