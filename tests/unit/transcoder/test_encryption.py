"""HLS AES-128 of a package's renditions: segments encrypted under their media sequence number as IV,
playlists keyed before every segment with the init segment left clear, chunked numbering consistent
with the stitched playlist; the plan hands encryption to the media children only."""

from __future__ import annotations

import os
import re
import tempfile
from pathlib import Path

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mpr_common.content_keys import key_uri
from mpr_common.events import JobRequested, MediaInfo, Rendition, SubtitleStream
from mpr_common.jobs import JobRequestError, normalize_job
from mpr_transcoder.kinds.package.children import plan_package
from mpr_transcoder.kinds.package.encrypted import rung_playlist
from mpr_transcoder.kinds.rendition.chunks import media_playlist, stitch
from mpr_transcoder.kinds.rendition.encryption import (
    SegmentSealer,
    decrypt_segment,
    encrypt_segment,
    keyed_playlist,
    segment_iv,
    segment_number,
)

KEY = bytes(range(16))
URI = key_uri("p1")
HD = MediaInfo(duration=60.0, video_codec="h264", width=1920, height=1080, audio_codec="aac")
# What FFmpeg's HLS muxer writes for an unchunked fMP4 rendition (hls_segment_type fmp4, VOD).
FFMPEG_PLAYLIST = """#EXTM3U
#EXT-X-VERSION:7
#EXT-X-TARGETDURATION:4
#EXT-X-MEDIA-SEQUENCE:0
#EXT-X-PLAYLIST-TYPE:VOD
#EXT-X-INDEPENDENT-SEGMENTS
#EXT-X-MAP:URI="720p_init.mp4"
#EXTINF:4.000000,
720p_00000.m4s
#EXTINF:4.000000,
720p_00001.m4s
#EXTINF:1.500000,
720p_00002.m4s
#EXT-X-ENDLIST
"""


def _keys(text: str) -> list[tuple[str, int]]:
    return [
        (m[1], int(m[2], 16))
        for m in re.finditer(r'#EXT-X-KEY:METHOD=AES-128,URI="([^"]*)",IV=0x([0-9a-f]{32})', text)
    ]


def _segments(text: str) -> list[str]:
    return [line for line in text.splitlines() if line and not line.startswith("#")]


def test_a_segment_decrypts_only_with_its_key_and_its_sequence_number():
    clear = b"\x00\x00\x00\x18moof" + os.urandom(1000)
    sealed = encrypt_segment(clear, KEY, 7)
    assert len(sealed) % 16 == 0 and 0 < len(sealed) - len(clear) <= 16  # PKCS#7
    assert sealed[4:8] != b"moof" and clear not in sealed
    assert decrypt_segment(sealed, KEY, 7) == clear
    assert segment_iv(7) == bytes(15) + b"\x07"
    # another IV garbles the first block (CBC), another key the whole (the padding fails, or it is noise)
    assert decrypt_segment(sealed, KEY, 8)[16:] == clear[16:]
    assert decrypt_segment(sealed, KEY, 8)[:16] != clear[:16]
    try:
        wrong = decrypt_segment(sealed, bytes(16), 7)
    except ValueError:
        wrong = b""
    assert wrong != clear


def test_ffmpegs_playlist_gets_a_key_before_every_segment_and_the_init_segment_stays_clear():
    keyed = keyed_playlist(FFMPEG_PLAYLIST, URI)
    lines = keyed.splitlines()
    assert _keys(keyed) == [(URI, 0), (URI, 1), (URI, 2)]
    assert lines.index('#EXT-X-MAP:URI="720p_init.mp4"') < min(
        i for i, x in enumerate(lines) if x.startswith("#EXT-X-KEY")
    )
    # each key line sits right before its segment's EXTINF, and nothing else moved
    for i, x in enumerate(lines):
        if x.startswith("#EXT-X-KEY"):
            assert lines[i + 1].startswith("#EXTINF") and segment_number(lines[i + 2]) == _keys(x)[0][1]
    assert [x for x in lines if not x.startswith("#EXT-X-KEY")] == FFMPEG_PLAYLIST.splitlines()
    assert keyed_playlist(keyed, URI) == keyed  # keyed again: the same


def test_a_playlist_whose_names_part_from_the_sequence_is_refused():
    shifted = FFMPEG_PLAYLIST.replace("#EXT-X-MEDIA-SEQUENCE:0", "#EXT-X-MEDIA-SEQUENCE:5")
    with pytest.raises(ValueError, match="number 0 in the playlist's sequence 5"):
        keyed_playlist(shifted, URI)
    with pytest.raises(ValueError, match="init segment first"):
        keyed_playlist(FFMPEG_PLAYLIST.replace('#EXT-X-MAP:URI="720p_init.mp4"\n', ""), URI)


def _chunk(first: int, count: int) -> Rendition:
    return Rendition(
        name="720p",
        type="video",
        playlist="720p.m3u8",
        init="720p_init.mp4",
        media_pattern="720p_%05d.m4s",
        start_number=first,
        segments=[4.0] * count,
        codecs="avc1.64001f",
        bandwidth=1000,
        average_bandwidth=900,
        init_digest="d",
    )


@settings(max_examples=50, deadline=None)
@given(sizes=st.lists(st.integers(min_value=1, max_value=5), min_size=1, max_size=8), ended=st.booleans())
def test_chunks_encrypt_their_own_segments_and_the_stitched_playlist_agrees(sizes, ended):
    """Each chunk encrypts the segments it wrote under their numbers in the title; the playlist the
    chord stitches names the same IVs, whatever the chunks' lengths."""
    firsts = [sum(sizes[:i]) for i in range(len(sizes))]
    rung = stitch([_chunk(f, n) for f, n in zip(firsts, sizes, strict=True)])
    text = keyed_playlist(media_playlist(rung, ended=ended), URI)
    names = _segments(text)
    assert [iv for _, iv in _keys(text)] == list(range(sum(sizes))) == [segment_number(n) for n in names]
    sealer = SegmentSealer(KEY, URI)
    # a chunk's sealer sees only its own files, named by their place in the title
    for first, n in zip(firsts, sizes, strict=True):
        for number in range(first, first + n):
            assert _iv_of(sealer, number) == number


def _iv_of(sealer: SegmentSealer, number: int) -> int:
    """The IV the sealer encrypted segment ``number`` under (of that number and its neighbours)."""
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / f"720p_{number:05d}.m4s"
        clear = b"segment %d" % number
        path.write_bytes(clear)
        sealed = sealer(path)
        assert sealed is not None and sealed != clear
        matches = [i for i in {number, number + 1, max(0, number - 1)} if _opens(sealed, i, clear)]
        assert matches == [number]
        return matches[0]


def _opens(sealed: bytes, iv: int, clear: bytes) -> bool:
    try:
        return decrypt_segment(sealed, KEY, iv) == clear
    except ValueError:
        return False


def test_the_sealer_encrypts_segments_keys_playlists_and_leaves_the_init_segment(tmp_path):
    sealer = SegmentSealer(KEY, URI)
    (tmp_path / "720p_init.mp4").write_bytes(b"\x00\x00\x00\x18ftypiso6")
    (tmp_path / "720p.m3u8").write_text(FFMPEG_PLAYLIST)
    (tmp_path / "720p_00001.m4s").write_bytes(b"media")
    assert sealer(tmp_path / "720p_init.mp4") is None
    assert _keys((sealer(tmp_path / "720p.m3u8") or b"").decode())[1] == (URI, 1)
    assert decrypt_segment(sealer(tmp_path / "720p_00001.m4s") or b"", KEY, 1) == b"media"


def _package(**kw) -> JobRequested:
    return normalize_job(JobRequested(job_id="p1", kind="package", source_key="shows/ep1.mkv", **kw))


def test_the_plan_encrypts_sound_and_picture_and_leaves_subtitles_and_storyboard_clear():
    info = msgspec.structs.replace(
        HD, subtitle_streams=[SubtitleStream(index=0, codec="subrip", language="en")], streams=3
    )
    plan = plan_package(_package(encryption="aes-128", storyboard=True), info)
    by = {c.rendition or c.kind: c for c in plan.jobs}
    media = [c for n, c in by.items() if not n.startswith("subs") and n != "storyboard"]
    assert media and all(c.encryption == "aes-128" for c in media)
    assert by["subs-en"].encryption is None and by["storyboard"].encryption is None
    assert any(c.chunk is not None for c in media)  # chunks inherit it from their rung
    for c in plan.jobs:
        assert normalize_job(c) == c
    assert all(c.encryption is None for c in plan_package(_package(), HD).jobs)


def test_the_stitched_rung_is_keyed_only_for_an_encrypted_package():
    rung = stitch([_chunk(0, 1), _chunk(1, 3)])
    clear = plan_package(_package(), HD)
    sealed = plan_package(_package(encryption="aes-128"), HD)
    assert "#EXT-X-KEY" not in rung_playlist(clear, rung, ended=True)
    assert _keys(rung_playlist(sealed, rung, ended=False)) == [(URI, i) for i in range(4)]


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        (
            {"kind": "package", "encryption": "cenc", "preset": "abr-av1"},
            "cenc of libsvtav1 rungs is not available",
        ),
        ({"kind": "package", "encryption": "rot13"}, "encryption must be one of aes-128, cenc"),
        ({"kind": "transcode", "encryption": "aes-128"}, "encryption is for package jobs"),
    ],
)
def test_encryption_is_checked_with_field_errors(fields, message):
    with pytest.raises(JobRequestError, match=message) as err:
        normalize_job(JobRequested(job_id="j1", source_key="a.mp4", **fields))
    assert err.value.field == "encryption"
