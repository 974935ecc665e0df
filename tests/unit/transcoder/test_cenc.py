"""CMAF CENC of a package's renditions: init segments announce the scheme and KID (tenc, pssh), media
segments get their samples encrypted with IVs and subsamples in senc/saiz/saio and their offsets and
index kept true; FFmpeg decodes them with the key exactly as the clear ones, and not without it; the
subsamples of any NAL units keep headers clear and encrypt whole blocks; the manifests name the KID and
the licence."""

from __future__ import annotations

import struct
import subprocess
import uuid
import xml.etree.ElementTree as ET
from pathlib import Path

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mpr_common.content_keys import LICENSE_DATA_ID, license_uri
from mpr_common.events import JobRequested
from mpr_common.jobs import normalize_job
from mpr_transcoder.kinds.package.children import plan_package
from mpr_transcoder.kinds.package.encrypted import master_playlist, package_mpd, rung_playlist
from mpr_transcoder.kinds.package.manifests import dash_mpd
from mpr_transcoder.kinds.package.protection import CLEARKEY_SYSTEMS, cenc_master, cenc_mpd, cenc_playlist
from mpr_transcoder.kinds.rendition.cenc import (
    COMMON_SYSTEM_ID,
    CencSealer,
    Track,
    crypt_sample,
    decrypt_segment,
    encrypt_segment,
    iter_sample_info,
    protect_init,
    read_track,
    subsamples,
)
from mpr_transcoder.kinds.rendition.cmaf import iter_boxes
from tests.unit.transcoder.test_encryption import FFMPEG_PLAYLIST, HD, _chunk

KEY = bytes(range(16))
KID = bytes(range(16, 32))
FFMPEG = ["ffmpeg", "-nostdin", "-v", "error"]


@pytest.fixture(scope="module")
def renditions(tmp_path_factory) -> Path:
    """A 3 s 320x180 H.264 rendition, an HEVC one and an AAC one, 1 s segments, as the package's
    children write them."""
    out = tmp_path_factory.mktemp("cenc")
    hls = ["-f", "hls", "-hls_segment_type", "fmp4", "-hls_time", "1", "-hls_playlist_type", "vod"]
    subprocess.run(
        [
            *FFMPEG,
            *("-f", "lavfi", "-i", "testsrc2=size=320x180:rate=25:duration=3"),
            *("-f", "lavfi", "-i", "sine=duration=3"),
            *("-map", "0:v", "-c:v", "libx264", "-preset", "ultrafast", "-g", "25", "-pix_fmt", "yuv420p"),
            *(
                *hls,
                "-hls_fmp4_init_filename",
                "v_init.mp4",
                "-hls_segment_filename",
                str(out / "v_%05d.m4s"),
            ),
            str(out / "v.m3u8"),
            *("-map", "1:a", "-c:a", "aac"),
            *(
                *hls,
                "-hls_fmp4_init_filename",
                "a_init.mp4",
                "-hls_segment_filename",
                str(out / "a_%05d.m4s"),
            ),
            str(out / "a.m3u8"),
            *("-map", "0:v", "-c:v", "libx265", "-preset", "ultrafast", "-tag:v", "hvc1"),
            *("-x265-params", "log-level=error:keyint=25", "-pix_fmt", "yuv420p"),
            *(
                *hls,
                "-hls_fmp4_init_filename",
                "h_init.mp4",
                "-hls_segment_filename",
                str(out / "h_%05d.m4s"),
            ),
            str(out / "h.m3u8"),
        ],
        check=True,
        timeout=60,
    )
    return out


def _box(data: bytes, *path: str) -> tuple[int, int]:
    start, end = 0, len(data)
    for name in path:
        skip = {"stsd": 8, "encv": 78, "avc1": 78, "enca": 28, "mp4a": 28}.get(name, 0)
        start, end = next((s, e) for k, s, e in iter_boxes(data, start, end) if k == name)
        start += skip
    return start, end


def _segments(folder: Path, name: str) -> list[Path]:
    return sorted(folder.glob(f"{name}_0*.m4s"))


def _framemd5(inputs: list[tuple[Path, str | None]], out: Path) -> tuple[int, list[bytes]]:
    """FFmpeg's frame hashes of each input (a file, decrypted with its key if one is given), ONE FFmpeg
    for all of them: each input its own demuxer and decoder, each hashed to a file of its own. Read as
    a stream (``-seekable 0``): FFmpeg 5.1 reads a seekable file's fragments ahead and then decrypts
    samples with the last one's encryption info; streamed it reads each in turn."""
    out.mkdir()
    args = [*FFMPEG, "-y"]
    for path, key in inputs:
        args += ["-seekable", "0", *(("-decryption_key", key) if key else ()), "-i", str(path)]
    hashes = [out / f"{i}.framemd5" for i in range(len(inputs))]
    for i, path in enumerate(hashes):
        args += ["-map", str(i), "-f", "framemd5", str(path)]
    run = subprocess.run(args, capture_output=True, timeout=60)
    return run.returncode, [p.read_bytes() if p.exists() else b"" for p in hashes]


def test_the_init_segment_announces_cenc_with_the_kid(renditions):
    for name, entry, fourcc in (("v", "encv", b"avc1"), ("a", "enca", b"mp4a")):
        clear = (renditions / f"{name}_init.mp4").read_bytes()
        data = protect_init(clear, KID)
        stsd = ("moov", "trak", "mdia", "minf", "stbl", "stsd")
        sinf = (*stsd, entry, "sinf")
        s, _ = _box(data, *sinf, "frma")
        assert data[s : s + 4] == fourcc
        s, _ = _box(data, *sinf, "schm")
        assert data[s + 4 : s + 12] == b"cenc" + struct.pack(">I", 0x10000)
        s, _ = _box(data, *sinf, "schi", "tenc")
        assert data[s + 4 : s + 8] == bytes([0, 0, 1, 8]) and data[s + 8 : s + 24] == KID
        s, e = _box(data, "moov", "pssh")
        assert data[s + 4 : s + 20] == COMMON_SYSTEM_ID and data[s + 24 : s + 40] == KID
        # the codec's own configuration is kept, and nothing else moves
        config = "avcC" if name == "v" else "esds"
        s, e = _box(data, *stsd, entry, config)
        cs, ce = _box(clear, *stsd, fourcc.decode(), config)
        assert data[s:e] == clear[cs:ce]
        assert read_track(clear) == (Track(nal_length=4, nal_header=1) if name == "v" else Track())


def test_segments_decode_with_the_key_exactly_as_clear_and_not_without_it(renditions, tmp_path):
    clear, protected = {}, {}
    for name in ("v", "h", "a"):
        init = (renditions / f"{name}_init.mp4").read_bytes()
        track = read_track(init)
        segments = [p.read_bytes() for p in _segments(renditions, name)]
        assert len(segments) >= 3  # several fragments, each with its own aux info
        sealed = [encrypt_segment(s, KEY, track) for s in segments]
        clear[name] = tmp_path / f"{name}-clear.mp4"
        clear[name].write_bytes(init + b"".join(segments))
        protected[name] = tmp_path / f"{name}-cenc.mp4"
        protected[name].write_bytes(protect_init(init, KID) + b"".join(sealed))
    names = list(clear)
    # the clear files and the protected ones with the key: every input decodes without an error
    rc, frames = _framemd5(
        [(clear[n], None) for n in names] + [(protected[n], KEY.hex()) for n in names], tmp_path / "ok"
    )
    assert rc == 0
    clear_frames, keyed_frames = frames[: len(names)], frames[len(names) :]
    assert all(clear_frames) and keyed_frames == clear_frames
    # with a wrong key, and with none: other frames (errors, or none at all), whatever FFmpeg's exit
    _, frames = _framemd5(
        [(protected[n], bytes(16).hex()) for n in names] + [(protected[n], None) for n in names],
        tmp_path / "bad",
    )
    wrong, keyless = frames[: len(names)], frames[len(names) :]
    for name, want, bad, none in zip(names, clear_frames, wrong, keyless, strict=True):
        assert bad != want and none != want, name


def test_offsets_index_and_ivs_stay_true(renditions):
    init = (renditions / "v_init.mp4").read_bytes()
    track = read_track(init)
    clear = _segments(renditions, "v")[0].read_bytes()
    data = encrypt_segment(clear, KEY, track, base_iv=2**64 - 2)
    assert decrypt_segment(data, KEY) != data
    # mdat keeps its length; the moof grew by the aux boxes, and the index by as much
    sizes = {k: e - s for k, s, e in iter_boxes(data)}
    old = {k: e - s for k, s, e in iter_boxes(clear)}
    assert sizes["mdat"] == old["mdat"] and sizes["moof"] > old["moof"]
    s, _ = _box(data, "sidx")
    assert struct.unpack_from(">I", data, s + 32)[0] & 0x7FFFFFFF == sizes["moof"] + sizes["mdat"] + 16
    # the samples found through the rewritten trun are the clear ones once decrypted
    infos = list(iter_sample_info(data))
    mdat_at = next(s for k, s, _ in iter_boxes(clear) if k == "mdat")
    new_mdat_at = next(s for k, s, _ in iter_boxes(data) if k == "mdat")
    decrypted = decrypt_segment(data, KEY)
    assert decrypted[new_mdat_at:] == clear[mdat_at:]
    # IVs: the base, then one more a sample, wrapping at 2^64
    ivs = [int.from_bytes(iv, "big") for _, iv, _ in infos]
    assert ivs[:3] == [2**64 - 2, 2**64 - 1, 0] and len(set(ivs)) == len(ivs)
    # saio points at the first sample's IV in senc (from the moof's start)
    moof = next(s for k, s, _ in iter_boxes(data) if k == "moof") - 8
    s, _ = _box(data, "moof", "traf", "saio")
    offset = struct.unpack_from(">I", data, s + 8)[0]
    assert data[moof + offset : moof + offset + 8] == (2**64 - 2).to_bytes(8, "big")
    # each NAL unit's length and header are clear; whole blocks are encrypted
    for (a, b), _, parts in infos:
        assert parts and sum(c + p for c, p in parts) == b - a
        assert all(p % 16 == 0 for _, p in parts)
        assert data[a : a + 5] == decrypted[a : a + 5]
    # a segment is encrypted once
    with pytest.raises(ValueError, match="encrypted already"):
        encrypt_segment(data, KEY, track)
    # a random base IV otherwise: the same segment twice has other IVs
    assert encrypt_segment(clear, KEY, track) != encrypt_segment(clear, KEY, track)


def _nal(kind: int, body: bytes) -> bytes:
    return struct.pack(">I", len(body) + 1) + bytes([kind]) + body


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.tuples(st.sampled_from([1, 5, 6, 7, 8, 9]), st.integers(min_value=0, max_value=70_000)),
        min_size=1,
        max_size=6,
    )
)
def test_subsamples_keep_headers_and_non_vcl_units_clear_and_encrypt_whole_blocks(units):
    sample = b"".join(_nal(kind, bytes([kind]) * size) for kind, size in units)
    track = Track(nal_length=4, nal_header=1)
    parts = subsamples(sample, track)
    assert sum(c + p for c, p in parts) == len(sample)
    assert all(0 <= c <= 0xFFFF and p % 16 == 0 for c, p in parts)
    sealed = crypt_sample(sample, KEY, bytes(8), parts)
    assert crypt_sample(sealed, KEY, bytes(8), parts) == sample
    pos = 0
    for kind, size in units:  # every length field and header is clear; non-VCL units whole
        assert sealed[pos : pos + 5] == sample[pos : pos + 5]
        unit = 5 + size
        if kind not in (1, 5):
            assert sealed[pos : pos + unit] == sample[pos : pos + unit]
        elif size >= 16:
            assert sealed[pos : pos + unit] != sample[pos : pos + unit]
        pos += unit


def test_a_sample_whose_units_do_not_add_up_is_refused():
    track = Track(nal_length=4, nal_header=1)
    with pytest.raises(ValueError, match="runs past"):
        subsamples(_nal(5, bytes(40))[:-1], track)
    with pytest.raises(ValueError, match="no sample entry"):
        read_track(b"")
    with pytest.raises(ValueError, match="no moov"):
        protect_init(b"", KID)


def test_the_sealer_protects_each_file_by_its_name(renditions, tmp_path):
    sealer = CencSealer(KEY, KID, lambda text: cenc_playlist(text, KID))
    init = sealer(renditions / "v_init.mp4")
    assert init is not None and b"encv" in init and b"pssh" in init
    segment = sealer(_segments(renditions, "v")[0])
    assert segment is not None and b"senc" in segment
    playlist = sealer(renditions / "v.m3u8")
    assert playlist is not None and b"SAMPLE-AES-CTR" in playlist
    other = tmp_path / "en.vtt"
    other.write_text("WEBVTT\n")
    assert sealer(other) is None


# --- manifests ----------------------------------------------------------------------------------------


def test_media_playlists_name_the_kid_before_the_init_segment():
    text = cenc_playlist(FFMPEG_PLAYLIST, KID)
    lines = text.splitlines()
    key = lines.index(next(x for x in lines if x.startswith("#EXT-X-KEY:")))
    assert lines[key + 1].startswith("#EXT-X-MAP:")
    assert sum(x.startswith("#EXT-X-KEY:") for x in lines) == 1
    assert lines[key] == (
        '#EXT-X-KEY:METHOD=SAMPLE-AES-CTR,KEYFORMAT="org.w3.clearkey",KEYFORMATVERSIONS="1",'
        'URI="data:text/plain;base64,EBESExQVFhcYGRobHB0eHw=="'
    )
    assert cenc_playlist(text, KID) == text
    assert [x for x in lines if not x.startswith("#EXT-X-KEY")] == FFMPEG_PLAYLIST.splitlines()


def test_the_master_names_the_session_key_and_the_licence():
    master = "#EXTM3U\n#EXT-X-VERSION:7\n#EXT-X-INDEPENDENT-SEGMENTS\n#EXT-X-STREAM-INF:BANDWIDTH=1\nv.m3u8\n"
    lines = cenc_master(master, KID, "p1").splitlines()
    assert lines[3].startswith('#EXT-X-SESSION-KEY:METHOD=SAMPLE-AES-CTR,KEYFORMAT="org.w3.clearkey"')
    assert lines[4] == f'#EXT-X-SESSION-DATA:DATA-ID="{LICENSE_DATA_ID}",VALUE="{license_uri("p1")}"'
    assert lines[5:] == master.splitlines()[3:]


def _package(**kw) -> JobRequested:
    return normalize_job(JobRequested(job_id="p1", kind="package", source_key="shows/ep1.mkv", **kw))


def test_the_mpd_protects_sound_and_picture_with_the_kid_and_licence():
    rung = _chunk(0, 2)
    audio = msgspec.structs.replace(
        rung, name="audio", type="audio", playlist="audio.m3u8", codecs="mp4a.40.2"
    )
    text = cenc_mpd(dash_mpd([rung, audio]), KID, "p1")
    ns = {
        "d": "urn:mpeg:dash:schema:mpd:2011",
        "cenc": "urn:mpeg:cenc:2013",
        "dashif": "https://dashif.org/CPS",
    }
    root = ET.fromstring(text)
    sets = root.findall(".//d:AdaptationSet", ns)
    assert [s.get("contentType") for s in sets] == ["video", "audio"]
    for aset in sets:
        protections = aset.findall("d:ContentProtection", ns)
        assert list(aset)[: len(protections)] == protections  # first in the set, as the schema orders
        assert protections[0].get("value") == "cenc"
        assert protections[0].get(f"{{{ns['cenc']}}}default_KID") == str(uuid.UUID(bytes=KID))
        assert [p.get("schemeIdUri") for p in protections[1:]] == list(CLEARKEY_SYSTEMS)
        assert [p.findtext("dashif:Laurl", namespaces=ns) for p in protections[1:]] == [license_uri("p1")] * 2


def test_the_package_writes_cenc_manifests_and_aes_128_none_in_dash():
    rung = _chunk(0, 2)
    cenc = plan_package(_package(encryption="cenc"), HD)
    aes = plan_package(_package(encryption="aes-128"), HD)
    clear = plan_package(_package(), HD)
    assert "ContentProtection" in (package_mpd(cenc, [rung], KID) or "")
    assert package_mpd(aes, [rung], None) is None
    assert "ContentProtection" not in (package_mpd(clear, [rung], None) or "x")
    assert "SAMPLE-AES-CTR" in rung_playlist(cenc, rung, ended=True, kid=KID)
    assert LICENSE_DATA_ID in master_playlist(cenc, [rung], KID)
    assert LICENSE_DATA_ID not in master_playlist(clear, [rung], None)
