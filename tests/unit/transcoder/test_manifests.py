"""The package manifests written from rendition descriptions (pure): HLS master playlist attributes and
order, DASH MPD structure, segment timelines without drift, escaping."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET

import pytest

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
