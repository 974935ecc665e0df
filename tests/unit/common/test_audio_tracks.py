"""A package's audio tracks: languages and titles read from the source's tags, which tracks a request's
audio_languages selects and in what order, their names, and the errors a client gets."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mpr_common.audio_tracks import (
    LONGEST_AUDIO_NAME,
    MAX_AUDIO_STREAMS,
    MAX_AUDIO_TRACKS,
    check_audio_languages,
    display_text,
    is_audio_rendition,
    language_tag,
    select_audio,
    source_audio,
    track_label,
)
from mpr_common.events import AudioStream, JobRequested, MediaInfo
from mpr_common.jobs import JobRequestError, normalize_job
from mpr_common.mediainfo import parse_ffprobe


@pytest.mark.parametrize(
    ("tag", "expected"),
    [
        ("eng", "en"),
        ("ENG", "en"),
        ("en", "en"),
        ("fre", "fr"),
        ("fra", "fr"),
        ("ger", "de"),
        ("pt_BR", "pt-br"),
        ("en-GB", "en-gb"),
        ("gsw", "gsw"),  # no two-letter code: kept
        ("und", None),
        ("mul", None),
        ("", None),
        ("english", None),
        ('en"', None),
        ("en\nfr", None),
        (None, None),
        (42, None),
    ],
)
def test_language_tags_are_bcp47_with_two_letters_where_iso_639_1_has_them(tag, expected):
    assert language_tag(tag) == expected


def test_display_text_drops_what_a_menu_or_a_manifest_cannot_hold():
    assert display_text("  Director's\tcommentary \n") == "Director's commentary"
    assert display_text("a\r\nb\u2028c\u0085d\x00e\ud800f\ufffeg") == "a b c d e f g"
    assert display_text("\x1b\x07") is None
    assert display_text("x" * 500) == "x" * 120
    assert display_text(None) is None


@given(st.text())
def test_display_text_never_holds_a_line_break_or_a_control(value):
    text = display_text(value)
    assert text is None or (text.strip() == text and len(text.splitlines()) == 1)
    assert text is None or not any(ord(c) < 0x20 or 0x7F <= ord(c) < 0xA0 for c in text)


def stream(index: int, language: str | None = None, title: str | None = None) -> AudioStream:
    return AudioStream(index=index, codec="aac", channels=2, language=language, title=title)


def test_ffprobe_tags_become_the_sources_audio_streams():
    info = parse_ffprobe(
        {
            "streams": [
                {"codec_type": "video", "codec_name": "h264", "width": 320, "height": 180},
                {"codec_type": "audio", "codec_name": "aac", "channels": 2, "tags": {"language": "eng"}},
                {
                    "codec_type": "audio",
                    "codec_name": "ac3",
                    "channels": 6,
                    "tags": {"LANGUAGE": "fre", "title": 'Version "française"\nlive'},
                },
                {"codec_type": "audio", "codec_name": "opus", "tags": {"language": "und"}},
            ],
            "format": {"duration": "4.0"},
        }
    )
    assert (info.audio_codec, info.channels) == ("aac", 2)  # the first audio stream's, as before
    assert info.audio_streams == [
        AudioStream(index=0, codec="aac", channels=2, language="en"),
        AudioStream(index=1, codec="ac3", channels=6, language="fr", title='Version "française" live'),
        AudioStream(index=2, codec="opus"),
    ]
    many = {"streams": [{"codec_type": "audio", "codec_name": "aac"}] * (MAX_AUDIO_STREAMS + 5)}
    assert len(parse_ffprobe(many).audio_streams) == MAX_AUDIO_STREAMS


def test_an_older_probe_without_the_list_has_its_first_audio_stream():
    old = MediaInfo(audio_codec="aac", channels=2)
    assert source_audio(old) == [AudioStream(index=0, codec="aac", channels=2)]
    assert source_audio(MediaInfo(video_codec="h264")) == []


def test_every_stream_by_default_the_first_named_audio_and_the_others_by_language():
    streams = [stream(0, "en"), stream(1, "fr"), stream(2, "fr", "Commentaire"), stream(3), stream(4, "de")]
    tracks = select_audio(streams, None)
    assert [t.name for t in tracks] == ["audio", "audio-fr", "audio-fr-2", "audio-3", "audio-de"]
    assert [t.stream.index for t in tracks] == [0, 1, 2, 3, 4]
    assert all(is_audio_rendition(t.name) for t in tracks)
    assert [track_label(t.stream) for t in tracks] == ["en", "fr", "Commentaire", "Audio 4", "de"]
    assert select_audio([], None) == []
    assert len(select_audio([stream(i) for i in range(MAX_AUDIO_STREAMS)], None)) == MAX_AUDIO_TRACKS


def test_audio_languages_select_and_order_the_tracks_the_first_the_default():
    streams = [stream(0, "en"), stream(1, "fr-ca"), stream(2, "de"), stream(3, "fr")]
    tracks = select_audio(streams, ["fr", "en"])
    # each language takes every stream of it (fr takes fr-ca too), in the source's order
    assert [(t.name, t.stream.index) for t in tracks] == [("audio", 1), ("audio-fr", 3), ("audio-en", 0)]
    assert [t.stream.index for t in select_audio(streams, ["fr-ca"])] == [1]


def test_a_language_the_source_lacks_is_refused_with_what_it_has():
    with pytest.raises(JobRequestError, match="no audio stream in es, it .*languages: de, en") as e:
        select_audio([stream(0, "en"), stream(1, "de"), stream(2)], ["en", "es", "it"])
    assert e.value.field == "audio_languages"
    with pytest.raises(JobRequestError, match="none tagged"):
        select_audio([stream(0)], ["en"])


def test_a_requests_audio_languages_are_checked_and_normalised_once():
    job = normalize_job(
        JobRequested(job_id="p1", kind="package", source_key="a.mp4", audio_languages=["ENG", "fre"])
    )
    assert job.audio_languages == ["en", "fr"]
    for bad, message in [
        ([], "1 to 16"),
        (["en"] * (MAX_AUDIO_TRACKS + 1), "1 to 16"),
        (["en", "eng"], "names 'en' twice"),
        (["english"], "'english' is not a language"),
        (["und"], "not a language"),
    ]:
        with pytest.raises(JobRequestError, match=message) as e:
            check_audio_languages(bad)
        assert e.value.field == "audio_languages"
    with pytest.raises(JobRequestError, match="option of package jobs"):
        normalize_job(JobRequested(job_id="t1", kind="transcode", source_key="a.mp4", audio_languages=["en"]))


def test_audio_rendition_names_are_recognised_and_the_longest_is_counted():
    assert all(
        is_audio_rendition(n) for n in ["audio", "audio-en", "audio-gsw-12", "audio-7", LONGEST_AUDIO_NAME]
    )
    assert not any(
        is_audio_rendition(n) for n in [None, "audio-", "audio-EN", "audio-en/..", "720p", "audio-english"]
    )
    worst = [stream(i, "fra") for i in range(MAX_AUDIO_STREAMS)]
    assert max(len(t.name) for t in select_audio(worst, None)) <= len(LONGEST_AUDIO_NAME)
