"""The WebVTT reader and segmenter: whatever text it is given, the cues of the segments it writes, read
back and merged, are the input's cues at the same times; a text that is not WebVTT is a clear error."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mpr_transcoder import webvtt
from mpr_transcoder.webvtt import Cue, WebVTTError


def test_cues_times_settings_and_payload_are_read():
    text = (
        "\ufeffWEBVTT - a title\r\nX-TIMESTAMP-MAP=MPEGTS:900000,LOCAL:00:00:00.000\r\n\r\n"
        "NOTE a comment\n--> not a cue\n\n"
        "STYLE\n::cue { color: red }\n\n"
        "id-1\n00:01.500 --> 00:00:02.250 align:start bogus line:0 x-->y\nHello\n<b>there</b>\n\n"
        "00:00.000 --> 00:01.000\n\n"
        "01:00:00.000 --> 01:00:01.000\nlate\n\n"
        "00:05.000 --> 00:04.000\nends before it starts\n\n"
        "no timing here\nat all\n"
    )
    assert webvtt.parse(text) == [
        Cue(0, 1000, ""),
        Cue(1500, 2250, "Hello\n<b>there</b>", "align:start line:0"),
        Cue(3_600_000, 3_601_000, "late"),
    ]


@pytest.mark.parametrize("text", ["", "WEBVTTX\n", "1\n00:00:00,000 --> 00:00:01,000\nSRT\n", "webvtt\n"])
def test_what_is_not_webvtt_is_a_clear_error(text):
    with pytest.raises(WebVTTError, match="not a WebVTT file"):
        webvtt.parse(text)


def test_a_cue_across_a_boundary_is_in_both_segments_and_merged_once():
    cues = [Cue(500, 1700, "a"), Cue(3000, 4500, "b"), Cue(9000, 9500, "c")]
    bounds = webvtt.boundaries(8000, 4000)
    assert bounds == [0, 4000, 8000]
    parts = webvtt.segment(cues, bounds)
    # the cue after the end is kept in the last segment
    assert parts == [[cues[0], cues[1]], [cues[1], cues[2]]]
    assert webvtt.merge(parts, bounds) == cues
    text = webvtt.serialize(parts[0], (webvtt.TIMESTAMP_MAP,))
    assert text.startswith(
        "WEBVTT\nX-TIMESTAMP-MAP=MPEGTS:0,LOCAL:00:00:00.000\n\n00:00:00.500 --> 00:00:01.700\na\n"
    )


def test_the_media_playlist_lists_each_segment_with_its_length():
    bounds = webvtt.boundaries(9500, 4000)
    playlist = webvtt.media_playlist(["s_00000.vtt", "s_00001.vtt", "s_00002.vtt"], bounds)
    assert "#EXT-X-TARGETDURATION:4\n" in playlist and playlist.endswith("#EXT-X-ENDLIST\n")
    assert [line for line in playlist.splitlines() if line.startswith("#EXTINF")] == [
        "#EXTINF:4.000,",
        "#EXTINF:4.000,",
        "#EXTINF:1.500,",
    ]


_stamp = st.integers(0, 3 * 3_600_000)
_line = st.text(st.characters(codec="utf-8"), max_size=20)


@st.composite
def webvtt_like(draw) -> str:
    """Texts near WebVTT: cue blocks with any payload, comments, broken timings and any text between."""
    blocks = []
    for _ in range(draw(st.integers(0, 8))):
        kind = draw(st.sampled_from(["cue", "cue", "cue", "note", "junk"]))
        if kind == "cue":
            start, length = draw(_stamp), draw(st.integers(-10, 20_000))
            timing = f"{webvtt.format_timestamp(start)} --> {webvtt.format_timestamp(max(0, start + length))}"
            timing += draw(st.sampled_from(["", " align:end", " line:3 junk", "\t size:50%"]))
            ident = draw(st.sampled_from([[], ["an id"], ["NOTE"]]))
            blocks.append("\n".join([*ident, timing, *draw(st.lists(_line, max_size=3))]))
        elif kind == "note":
            blocks.append("NOTE " + draw(_line))
        else:
            blocks.append(draw(st.text(max_size=40)))
    return "WEBVTT\n\n" + "\n\n".join(blocks)


@settings(max_examples=300, deadline=None)
@given(st.one_of(webvtt_like(), st.text(max_size=200), st.text(max_size=200).map(lambda t: "WEBVTT\n" + t)),
       st.integers(1, 10_000), st.integers(1, 40_000))  # fmt: skip
def test_segments_read_back_and_merged_are_the_input_cues(text, segment_ms, duration_ms):
    try:
        cues = webvtt.parse(text)
    except WebVTTError:
        assert not text.lstrip("\ufeff").startswith("WEBVTT\n")
        return
    bounds = webvtt.boundaries(duration_ms, segment_ms)
    parts = webvtt.segment(cues, bounds)
    assert len(parts) == len(bounds) - 1
    read_back = [webvtt.parse(webvtt.serialize(p, (webvtt.TIMESTAMP_MAP,))) for p in parts]
    assert read_back == parts  # each segment file holds exactly its cues
    for i, part in enumerate(read_back):  # each overlaps its segment (or lies beyond the last)
        assert all(c.start < bounds[i + 1] or i == len(parts) - 1 for c in part)
        assert all(c.end > bounds[i] for c in part)
    assert webvtt.merge(read_back, bounds) == cues
    assert webvtt.parse(webvtt.serialize(cues)) == cues  # the whole file, for DASH


def test_a_window_drops_cues_outside_cuts_those_across_an_edge_and_moves_the_rest():
    cues = [Cue(300, 1200, "before"), Cue(1500, 2800, "start"), Cue(3200, 4100, "in"), Cue(4600, 5600, "end")]
    assert webvtt.window(cues, 2000, 5000) == [
        Cue(0, 800, "start"),
        Cue(1200, 2100, "in"),
        Cue(2600, 3000, "end"),
    ]
    # an output whose time 0 comes 5 ms before what it shows (a sound packet kept before the start)
    assert webvtt.window(cues, 2000, 5000, origin=1995)[0] == Cue(5, 805, "start")
    assert webvtt.window(cues, 1200, None) == [
        Cue(300, 1600, "start"),
        Cue(2000, 2900, "in"),
        Cue(3400, 4400, "end"),
    ]
    with pytest.raises(ValueError, match="time 0"):
        webvtt.window(cues, 2000, 5000, origin=2001)


_cues = st.lists(
    st.tuples(st.integers(0, 100_000), st.integers(1, 20_000), st.text(max_size=5)).map(
        lambda t: Cue(t[0], t[0] + t[1], t[2])
    ),
    max_size=12,
).map(lambda cues: sorted(cues, key=lambda c: c.start))


@settings(max_examples=300, deadline=None)
@given(_cues, st.integers(0, 120_000), st.integers(0, 60_000), st.integers(0, 1000), st.booleans())
def test_a_windows_cues_lie_within_it_in_order_and_none_gains_time(cues, start, length, lead, open_ended):
    end = None if open_ended else start + length
    origin = max(0, start - lead)
    out = webvtt.window(cues, start, end, origin=origin)
    # shown: what of the cue lies in the window (none of an empty window)
    overlapping = [c for c in cues if max(c.start, start) < (c.end if end is None else min(c.end, end))]
    assert [c.text for c in out] == [c.text for c in overlapping]  # every cue shown in it, in order
    for c, src in zip(out, overlapping, strict=True):
        assert start - origin <= c.start < c.end  # within the window, never empty
        assert end is None or c.end <= end - origin
        assert c.end - c.start <= src.end - src.start  # no cue gains time
        # a cue's times are the source's, moved by the origin, except where an edge cuts it
        assert c.start + origin == max(src.start, start)
        assert c.end + origin == (src.end if end is None else min(src.end, end))
    assert [c.start for c in out] == sorted(c.start for c in out)
