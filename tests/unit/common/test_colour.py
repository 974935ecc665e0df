"""A source's dynamic range and HDR metadata read from ffprobe's JSON (pure): transfer names, stream and
first-frame side data, and side data values that are missing, malformed or out of range."""

from __future__ import annotations

import msgspec
from hypothesis import given, settings
from hypothesis import strategies as st

from mpr_common.colour import content_light, dynamic_range, hdr_metadata, mastering_display
from mpr_common.events import ContentLight, MasteringDisplay, MediaInfo
from mpr_common.mediainfo import first_frame_args, frame_hdr_metadata, parse_ffprobe

MASTERING = {
    "side_data_type": "Mastering display metadata",
    "red_x": "34000/50000",
    "red_y": "16000/50000",
    "green_x": "13250/50000",
    "green_y": "34500/50000",
    "blue_x": "7500/50000",
    "blue_y": "3000/50000",
    "white_point_x": "15635/50000",
    "white_point_y": "16450/50000",
    "min_luminance": "1/10000",
    "max_luminance": "10000000/10000",
}
LIGHT = {"side_data_type": "Content light level metadata", "max_content": 1000, "max_average": 400}
P3_D65 = MasteringDisplay(
    red=(34000, 16000),
    green=(13250, 34500),
    blue=(7500, 3000),
    white_point=(15635, 16450),
    max_luminance=10000000,
    min_luminance=1,
)


def probe_json(**video) -> dict:
    stream = {"index": 0, "codec_type": "video", "codec_name": "hevc", "width": 3840, "height": 2160}
    return {"format": {"duration": "10.0"}, "streams": [{**stream, **video}]}


def test_the_transfer_decides_the_range():
    hdr10 = probe_json(
        pix_fmt="yuv420p10le", color_transfer="smpte2084", color_primaries="bt2020", color_space="bt2020nc"
    )
    info = parse_ffprobe(hdr10)
    assert dynamic_range(info) == "pq"
    assert (info.color_primaries, info.color_space, info.pix_fmt) == ("bt2020", "bt2020nc", "yuv420p10le")
    assert dynamic_range(parse_ffprobe(probe_json(color_transfer="arib-std-b67"))) == "hlg"
    for sdr in ({"color_transfer": "bt709"}, {}, {"color_transfer": "unknown"}, {"color_transfer": 7}):
        info = parse_ffprobe(probe_json(**sdr))
        assert dynamic_range(info) == "sdr"
        assert info.color_transfer in (None, "bt709")
    # BT.2020 primaries with an SDR transfer (a wide-gamut SDR master) is not HDR
    assert (
        dynamic_range(parse_ffprobe(probe_json(color_primaries="bt2020", color_transfer="bt2020-10")))
        == "sdr"
    )


def test_mastering_metadata_from_the_stream_or_its_first_frame():
    # Matroska (and MP4 with mdcv/clli) carry them on the stream
    info = parse_ffprobe(probe_json(color_transfer="smpte2084", side_data_list=[MASTERING, LIGHT]))
    assert info.mastering_display == P3_D65
    assert info.content_light == ContentLight(max_cll=1000, max_fall=400)
    # HEVC in MP4: only in the first frame's SEI, read by first_frame_args
    frames = {
        "frames": [{"stream_index": 0, "side_data_list": [{"side_data_type": "SEI"}, MASTERING, LIGHT]}]
    }
    assert frame_hdr_metadata(frames) == (P3_D65, ContentLight(max_cll=1000, max_fall=400))
    with_frames = parse_ffprobe({**probe_json(color_transfer="smpte2084"), **frames})
    assert with_frames.mastering_display == P3_D65
    # nothing: SDR, no side data
    assert parse_ffprobe(probe_json()).mastering_display is None
    assert frame_hdr_metadata({}) == (None, None)


def test_the_first_frame_probe_is_whitelisted_and_reads_one_packet():
    args = first_frame_args("https://bucket/a.mp4?X-Amz-Signature=s")
    assert args[args.index("-protocol_whitelist") + 1] == "http,https,tcp,tls,crypto"
    assert "-format_whitelist" in args and args[args.index("-read_intervals") + 1] == "%+#1"
    assert args[-2:] == ["-i", "https://bucket/a.mp4?X-Amz-Signature=s"]


def test_old_events_decode_without_the_colour_fields():
    old = b'{"video_codec":"h264","width":640,"height":360,"pix_fmt":"yuv420p","streams":2}'
    info = msgspec.json.decode(old, type=MediaInfo)
    assert dynamic_range(info) == "sdr" and info.mastering_display is None
    # and an HDR one goes round the bus
    hdr = MediaInfo(
        color_transfer="smpte2084",
        mastering_display=P3_D65,
        content_light=ContentLight(max_cll=1, max_fall=1),
    )
    assert msgspec.json.decode(msgspec.json.encode(hdr), type=MediaInfo) == hdr


def test_malformed_or_out_of_range_values_are_left_out():
    assert mastering_display({**MASTERING, "red_x": "N/A"}) is None
    assert mastering_display({**MASTERING, "red_x": "1/0"}) is None
    assert mastering_display({**MASTERING, "red_x": "60000/50000"}) is None  # chromaticity above 1
    assert mastering_display({**MASTERING, "min_luminance": "20000000/10000"}) is None  # min above max
    assert mastering_display({k: v for k, v in MASTERING.items() if k != "blue_y"}) is None
    assert mastering_display(LIGHT) is None
    assert content_light({**LIGHT, "max_content": 70000}) is None  # 16 bits
    assert content_light({**LIGHT, "max_content": "1.5"}) is None
    assert content_light({**LIGHT, "max_average": True}) is None
    assert hdr_metadata(["not a dict", None, 3, MASTERING]) == (P3_D65, None)


values = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**40), max_value=2**40),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=12),
    st.builds(lambda n, d: f"{n}/{d}", st.integers(-(2**33), 2**33), st.integers(-5, 2**17)),
    st.lists(st.integers(), max_size=2),
)
FIELDS = [k for k in MASTERING if k != "side_data_type"] + ["max_content", "max_average"]


@settings(max_examples=300, deadline=None)
@given(
    kind=st.sampled_from(["Mastering display metadata", "Content light level metadata", "other"]),
    entry=st.dictionaries(st.sampled_from(FIELDS), values),
)
def test_any_side_data_parses_to_values_in_range_or_none(kind, entry):
    """Whatever ffprobe prints (a hostile file chooses it), the parse never raises and never yields a
    value x265 or SVT-AV1 would refuse: chromaticity within 0..50000, luminance min <= max within 32 bits,
    content light within 16 bits."""
    entry = {**entry, "side_data_type": kind}
    m = mastering_display(entry)
    if m is not None:
        for x, y in (m.red, m.green, m.blue, m.white_point):
            assert 0 <= x <= 50000 and 0 <= y <= 50000
        assert 0 <= m.min_luminance <= m.max_luminance < 2**32
    c = content_light(entry)
    if c is not None:
        assert 0 <= c.max_cll <= 0xFFFF and 0 <= c.max_fall <= 0xFFFF
    info = parse_ffprobe(probe_json(color_transfer="smpte2084", side_data_list=[entry]))
    assert info.mastering_display == m and info.content_light == c
