"""The package manifests written from rendition descriptions (pure): HLS master playlist attributes and
order, DASH MPD structure, segment timelines without drift, escaping."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mpr_common.events import Rendition
from mpr_transcoder.kinds.package.manifests import (
    VIDEO_TIMESCALE,
    dash_mpd,
    frame_rate_attr,
    hls_master,
    number_template,
    segment_timeline,
    timeline,
)

NS = {"d": "urn:mpeg:dash:schema:mpd:2011"}


def video(name: str, height: int, bandwidth: int, codecs: str = "avc1.64001f", **kw) -> Rendition:
    return Rendition(
        name=name,
        type="video",
        playlist=f"{name}.m3u8",
        init=f"{name}_init.mp4",
        media_pattern=f"{name}_%05d.m4s",
        segments=kw.pop("segments", [4.0, 4.0, 4.0, 1.5]),
        bandwidth=bandwidth,
        average_bandwidth=bandwidth * 3 // 4,
        codecs=codecs,
        width=height * 16 // 9,
        height=height,
        frame_rate=kw.pop("frame_rate", 25.0),
        **kw,
    )


AUDIO = Rendition(
    name="audio",
    type="audio",
    playlist="audio.m3u8",
    init="audio_init.mp4",
    media_pattern="audio_%05d.m4s",
    segments=[4.010667, 3.989333, 4.010667, 1.512],
    bandwidth=131_000,
    average_bandwidth=129_000,
    codecs="mp4a.40.2",
    sample_rate=48000,
    channels=2,
)

LADDER = [
    video("720p", 720, 3_100_000),
    video("360p", 360, 820_000),
    video("hevc-720p", 720, 2_050_000, codecs="hvc1.1.6.L93.90"),
    AUDIO,
]


def attributes(line: str) -> dict[str, str]:
    """An HLS attribute list (quoted values may hold commas)."""
    pairs = re.findall(r'([A-Z0-9-]+)=("[^"]*"|[^,]*)', line.split(":", 1)[1])
    return {key: value.strip('"') for key, value in pairs}


# --- HLS ----------------------------------------------------------------------------------------------


def test_master_playlist_variants_sorted_with_audio_added() -> None:
    lines = hls_master(LADDER).splitlines()
    assert lines[:3] == ["#EXTM3U", "#EXT-X-VERSION:7", "#EXT-X-INDEPENDENT-SEGMENTS"]
    (media,) = [attributes(line) for line in lines if line.startswith("#EXT-X-MEDIA:")]
    assert media == {
        "TYPE": "AUDIO",
        "GROUP-ID": "aud",
        "NAME": "audio",
        "DEFAULT": "YES",
        "AUTOSELECT": "YES",
        "CHANNELS": "2",
        "URI": "audio.m3u8",
    }
    variants = [
        (attributes(line), lines[i + 1])
        for i, line in enumerate(lines)
        if line.startswith("#EXT-X-STREAM-INF:")
    ]
    assert [uri for _, uri in variants] == ["360p.m3u8", "hevc-720p.m3u8", "720p.m3u8"]
    by_uri = {uri: attrs for attrs, uri in variants}
    for r in LADDER[:3]:
        attrs = by_uri[r.playlist]
        assert int(attrs["BANDWIDTH"]) == r.bandwidth + AUDIO.bandwidth
        assert int(attrs["AVERAGE-BANDWIDTH"]) == r.average_bandwidth + AUDIO.average_bandwidth
        assert attrs["CODECS"] == f"{r.codecs},mp4a.40.2"
        assert attrs["RESOLUTION"] == f"{r.width}x{r.height}"
        assert attrs["FRAME-RATE"] == "25.000" and attrs["AUDIO"] == "aud"


def test_master_playlist_without_audio_or_without_video() -> None:
    silent = hls_master([video("360p", 360, 800_000)])
    assert "#EXT-X-MEDIA" not in silent and "AUDIO=" not in silent
    assert 'BANDWIDTH=800000,AVERAGE-BANDWIDTH=600000,CODECS="avc1.64001f",RESOLUTION=640x360' in silent
    sound = hls_master([AUDIO]).splitlines()
    assert sound[-2:] == [
        '#EXT-X-STREAM-INF:BANDWIDTH=131000,AVERAGE-BANDWIDTH=129000,CODECS="mp4a.40.2"',
        "audio.m3u8",
    ]
    with pytest.raises(ValueError):
        hls_master([])


def test_master_playlist_uris_are_encoded_and_quotes_refused() -> None:
    spaced = video("a b", 360, 800_000)
    assert "\na%20b.m3u8\n" in hls_master([spaced])
    with pytest.raises(ValueError, match="HLS attribute"):
        hls_master([video("360p", 360, 800_000), Rendition(**{**_fields(AUDIO), "name": 'say "hi"'})])


def _fields(r: Rendition) -> dict:
    return {f: getattr(r, f) for f in r.__struct_fields__}


# --- DASH ---------------------------------------------------------------------------------------------


def test_timeline_rounds_the_running_total_not_each_segment() -> None:
    # 4.0000044 s each: 360000.396 ticks, rounded alone 360000, which would lose 40 ticks over 100
    durations = [4.0000044] * 100
    spans = timeline(durations, VIDEO_TIMESCALE)
    total = 0.0
    for i, (start, duration) in enumerate(spans):
        assert start == round(total * VIDEO_TIMESCALE)
        total += durations[i]
        assert start + duration == round(total * VIDEO_TIMESCALE)
    end = spans[-1][0] + spans[-1][1]
    assert end == round(400.00044 * VIDEO_TIMESCALE) == 36_000_040
    assert sum(round(d * VIDEO_TIMESCALE) for d in durations) == 36_000_000  # the drift avoided


def test_segment_timeline_runs() -> None:
    element = segment_timeline([4.0, 4.0, 4.0, 1.5], VIDEO_TIMESCALE)
    assert [s.attrib for s in element] == [{"t": "0", "d": "360000", "r": "2"}, {"d": "135000"}]
    # AAC segments: whole 1024-sample frames at 48 kHz, as FFmpeg's playlist rounds them (6 decimals)
    element = segment_timeline(AUDIO.segments, 48000)
    assert [s.attrib for s in element] == [
        {"t": "0", "d": "192512"},
        {"d": "191488"},
        {"d": "192512"},
        {"d": "72576"},
    ]


def test_number_template() -> None:
    assert number_template("720p_%05d.m4s") == "720p_$Number%05d$.m4s"
    assert number_template("seg-%d.m4s") == "seg-$Number$.m4s"
    assert number_template("a$b_%05d.m4s") == "a$$b_$Number%05d$.m4s"
    with pytest.raises(ValueError):
        number_template("fixed.m4s")
    with pytest.raises(ValueError):
        number_template("%05d_%05d.m4s")


@pytest.mark.parametrize(
    ("fps", "attr"), [(25.0, "25"), (30000 / 1001, "30000/1001"), (24000 / 1001, "24000/1001"), (60.0, "60")]
)
def test_frame_rate_attr(fps: float, attr: str) -> None:
    assert frame_rate_attr(fps) == attr


def test_mpd_structure() -> None:
    mpd = ET.fromstring(dash_mpd(LADDER))
    assert mpd.tag == "{urn:mpeg:dash:schema:mpd:2011}MPD"
    assert mpd.get("type") == "static" and mpd.get("profiles") == "urn:mpeg:dash:profile:isoff-live:2011"
    assert mpd.get("mediaPresentationDuration") == f"PT{sum(AUDIO.segments):.3f}S"  # the longest rendition
    sets = mpd.findall("d:Period/d:AdaptationSet", NS)
    assert [
        (s.get("contentType"), [r.get("id") for r in s.findall("d:Representation", NS)]) for s in sets
    ] == [
        ("video", ["360p", "720p"]),
        ("video", ["hevc-720p"]),
        ("audio", ["audio"]),
    ]
    assert all(s.get("segmentAlignment") == "true" for s in sets)
    assert (sets[0].get("maxWidth"), sets[0].get("maxHeight")) == ("1280", "720")
    rep = sets[0].find("d:Representation[@id='720p']", NS)
    assert rep is not None
    assert (
        rep.attrib
        | {
            "bandwidth": "3100000",
            "codecs": "avc1.64001f",
            "width": "1280",
            "height": "720",
            "frameRate": "25",
        }
        == rep.attrib
    )
    template = rep.find("d:SegmentTemplate", NS)
    assert template is not None
    assert template.attrib == {
        "timescale": str(VIDEO_TIMESCALE),
        "initialization": "720p_init.mp4",
        "media": "720p_$Number%05d$.m4s",
        "startNumber": "0",
    }
    audio = sets[2].find("d:Representation", NS)
    assert audio is not None and audio.get("audioSamplingRate") == "48000"
    assert [c.tag.split("}")[1] for c in audio] == ["AudioChannelConfiguration", "SegmentTemplate"]
    audio_template = audio.find("d:SegmentTemplate", NS)
    assert audio_template is not None and audio_template.get("timescale") == "48000"


def test_mpd_start_number_and_escaping() -> None:
    odd = video('a&b<"c>', 360, 500_000, start_number=7)
    mpd = ET.fromstring(dash_mpd([odd]))
    rep = mpd.find("d:Period/d:AdaptationSet/d:Representation", NS)
    assert rep is not None and rep.get("id") == 'a&b<"c>'
    template = rep.find("d:SegmentTemplate", NS)
    assert template is not None
    assert template.get("media") == 'a&b<"c>_$Number%05d$.m4s' and template.get("startNumber") == "7"
    assert template.get("initialization") == 'a&b<"c>_init.mp4'
    with pytest.raises(ValueError):
        dash_mpd([])


# --- audio tracks -----------------------------------------------------------------------------------


def audio(name: str, language: str | None = None, label: str | None = None) -> Rendition:
    return Rendition(**{**_fields(AUDIO), "name": name, "playlist": f"{name}.m3u8", "init": f"{name}_init.mp4",
                        "media_pattern": f"{name}_%05d.m4s", "language": language, "label": label})  # fmt: skip


TRACKS = [audio("audio", "en", "English"), audio("audio-fr", "fr", "Français"), audio("audio-3")]


def test_each_audio_track_is_a_member_of_the_one_audio_group_the_first_the_default() -> None:
    lines = hls_master([video("360p", 360, 820_000), *TRACKS]).splitlines()
    media = [attributes(line) for line in lines if line.startswith("#EXT-X-MEDIA:")]
    assert [(m["NAME"], m.get("LANGUAGE"), m["DEFAULT"], m["URI"]) for m in media] == [
        ("English", "en", "YES", "audio.m3u8"),
        ("Français", "fr", "NO", "audio-fr.m3u8"),
        ("audio-3", None, "NO", "audio-3.m3u8"),
    ]
    assert {(m["TYPE"], m["GROUP-ID"], m["AUTOSELECT"]) for m in media} == {("AUDIO", "aud", "YES")}
    (variant,) = [attributes(line) for line in lines if line.startswith("#EXT-X-STREAM-INF:")]
    assert variant["AUDIO"] == "aud" and variant["CODECS"] == "avc1.64001f,mp4a.40.2"


def test_names_in_the_group_are_unique_and_a_bad_language_is_left_out() -> None:
    twins = [audio("audio", "en", "Main"), audio("audio-en", "en", "Main"), audio("audio-2", 'x",Y=1', "")]
    media = [attributes(line) for line in hls_master([video("360p", 360, 1), *twins]).splitlines()
             if line.startswith("#EXT-X-MEDIA:")]  # fmt: skip
    assert [m["NAME"] for m in media] == ["Main", "Main (audio-en)", "audio-2"]
    tricky = [audio("audio", label="X (audio-2)"), audio("audio-1", label="X"), audio("audio-2", label="X")]
    names = [attributes(line)["NAME"] for line in hls_master([video("360p", 360, 1), *tricky]).splitlines()
             if line.startswith("#EXT-X-MEDIA:")]  # fmt: skip
    assert names == ["X (audio-2)", "X", "X (audio-2 2)"]
    assert "LANGUAGE" not in media[2]


def test_each_audio_track_is_an_adaptation_set_with_its_language_label_and_role() -> None:
    mpd = ET.fromstring(dash_mpd([video("360p", 360, 820_000), *TRACKS]))
    sets = [s for s in mpd.findall("d:Period/d:AdaptationSet", NS) if s.get("contentType") == "audio"]
    assert [s.get("lang") for s in sets] == ["en", "fr", None]
    assert [s.findtext("d:Label", namespaces=NS) for s in sets] == ["English", "Français", "audio-3"]
    assert [s.find("d:Role", NS).get("value") for s in sets] == ["main", "alternate", "alternate"]
    assert [[r.get("id") for r in s.findall("d:Representation", NS)] for s in sets] == [
        ["audio"],
        ["audio-fr"],
        ["audio-3"],
    ]
    assert len({s.get("id") for s in mpd.findall("d:Period/d:AdaptationSet", NS)}) == 4
    # the schema's order: Label, Role, then the representations
    assert [c.tag.split("}")[1] for c in sets[0]] == ["Label", "Role", "Representation"]


_ATTRIBUTE = re.compile(r'([A-Z0-9-]+)=("[^"\r\n]*"|[^",\s]+)')


def _attribute_list(text: str) -> dict[str, str]:
    """RFC 8216's attribute-list grammar, strictly: the whole text must be pairs separated by commas."""
    pairs: dict[str, str] = {}
    pos = 0
    while pos < len(text):
        m = _ATTRIBUTE.match(text, pos)
        assert m, f"not an attribute list at {text[pos:]!r}"
        assert m.group(1) not in pairs
        pairs[m.group(1)] = m.group(2)
        pos = m.end()
        if pos < len(text):
            assert text[pos] == ",", text[pos:]
            pos += 1
    return pairs


@given(st.lists(st.tuples(st.text(), st.text()), min_size=1, max_size=4))
def test_no_tag_value_can_break_an_attribute_list_or_add_a_line(tags) -> None:
    tracks = [audio(f"audio-{i}", language=lang, label=title) for i, (title, lang) in enumerate(tags)]
    master = hls_master([video("360p", 360, 820_000), *tracks])
    lines = master.split("\n")
    assert lines[-1] == "" and len(master.splitlines()) == len(lines) - 1  # no other line break
    media = [line for line in lines if line.startswith("#EXT-X-MEDIA:")]
    assert len(lines) == 3 + len(tracks) + 2 + 1 and len(media) == len(tracks)
    names = []
    for line, track in zip(media, tracks, strict=True):
        attrs = _attribute_list(line.split(":", 1)[1])
        assert set(attrs) <= {
            "TYPE",
            "GROUP-ID",
            "NAME",
            "LANGUAGE",
            "DEFAULT",
            "AUTOSELECT",
            "CHANNELS",
            "URI",
        }
        assert attrs["URI"] == f'"{track.name}.m3u8"' and attrs["GROUP-ID"] == '"aud"'
        names.append(attrs["NAME"])
    assert len(set(names)) == len(names)
    # the MPD holds the same labels as well-formed XML
    mpd = ET.fromstring(dash_mpd([video("360p", 360, 820_000), *tracks]))
    labels = [s.findtext("d:Label", namespaces=NS) for s in mpd.findall("d:Period/d:AdaptationSet", NS)[1:]]
    assert [f'"{label}"' for label in labels] == names


# --- subtitle tracks --------------------------------------------------------------------------------


def subs(name: str, language: str | None = None, label: str | None = None, **kw) -> Rendition:
    return Rendition(name=name, type="subtitles", playlist=f"{name}.m3u8", init="",
                     media_pattern=f"{name}_%05d.vtt", segments=[4.0, 4.0, 4.0, 1.5], bandwidth=800,
                     codecs="wvtt", language=language, label=label, text_file=f"{name}.vtt", **kw)  # fmt: skip


SUBS = [
    subs("subs-en", "en", "English", default=True),
    subs("subs-fr", "fr", "fr", forced=True),
    subs("subs-2"),
]


def test_each_subtitle_track_is_a_member_of_the_subtitle_group_every_variant_names() -> None:
    lines = hls_master([*LADDER, *SUBS]).splitlines()
    media = [attributes(line) for line in lines if line.startswith("#EXT-X-MEDIA:TYPE=SUBTITLES")]
    assert [(m["NAME"], m.get("LANGUAGE"), m["DEFAULT"], m["FORCED"], m["URI"]) for m in media] == [
        ("English", "en", "YES", "NO", "subs-en.m3u8"),
        ("fr", "fr", "NO", "YES", "subs-fr.m3u8"),
        ("subs-2", None, "NO", "NO", "subs-2.m3u8"),
    ]
    assert {(m["GROUP-ID"], m["AUTOSELECT"]) for m in media} == {("subs", "YES")}
    variants = [attributes(line) for line in lines if line.startswith("#EXT-X-STREAM-INF:")]
    assert len(variants) == 3 and all(v["SUBTITLES"] == "subs" and v["AUDIO"] == "aud" for v in variants)
    # the audio group is untouched, and a package without subtitles names no subtitle group
    assert sum(line.startswith("#EXT-X-MEDIA:TYPE=AUDIO") for line in lines) == 1
    assert "SUBTITLES" not in hls_master(LADDER)


def test_each_subtitle_track_is_a_text_adaptation_set_with_its_whole_file() -> None:
    mpd = ET.fromstring(dash_mpd([*LADDER, *SUBS]))
    sets = [s for s in mpd.findall("d:Period/d:AdaptationSet", NS) if s.get("contentType") == "text"]
    assert [(s.get("mimeType"), s.get("lang")) for s in sets] == [
        ("text/vtt", "en"),
        ("text/vtt", "fr"),
        ("text/vtt", None),
    ]
    assert [s.findtext("d:Label", namespaces=NS) for s in sets] == ["English", "fr", "subs-2"]
    assert [s.find("d:Role", NS).get("value") for s in sets] == ["subtitle", "forced-subtitle", "subtitle"]
    assert [s.findtext("d:Representation/d:BaseURL", namespaces=NS) for s in sets] == [
        "subs-en.vtt",
        "subs-fr.vtt",
        "subs-2.vtt",
    ]
    ids = [s.get("id") for s in mpd.findall("d:Period/d:AdaptationSet", NS)]
    assert len(set(ids)) == len(ids) == 6  # two video families, the audio, three texts


@given(st.lists(st.tuples(st.text(), st.text()), min_size=1, max_size=4))
def test_no_subtitle_tag_can_break_an_attribute_list_or_add_a_line(tags) -> None:
    tracks = [subs(f"subs-{i}", language=lang, label=title) for i, (title, lang) in enumerate(tags)]
    master = hls_master([video("360p", 360, 820_000), *tracks])
    lines = master.split("\n")
    assert lines[-1] == "" and len(master.splitlines()) == len(lines) - 1
    media = [line for line in lines if line.startswith("#EXT-X-MEDIA:")]
    assert len(media) == len(tracks)
    for line in media:
        attrs = _attribute_list(line.split(":", 1)[1])
        assert attrs["TYPE"] == "SUBTITLES" and attrs["NAME"].startswith('"')
    ET.fromstring(dash_mpd([video("360p", 360, 820_000), *tracks]))  # well-formed XML
