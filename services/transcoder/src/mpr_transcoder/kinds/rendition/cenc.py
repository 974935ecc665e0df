"""CMAF CENC (ISO/IEC 23001-7, the ``cenc`` scheme: AES-128-CTR) of a package's renditions, done on the
files FFmpeg wrote as they are uploaded, in pure Python (``cryptography``), like HLS AES-128
(:mod:`.encryption`): the work dir stays clear (describing a rendition and moving a chunk's fragments
read and rewrite its boxes first), and the key never reaches FFmpeg's command line.

- **Init segment** (:func:`protect_init`): the sample entry becomes ``encv``/``enca`` with a ``sinf``
  (``frma`` the original format, ``schm`` ``cenc`` 1.0, ``tenc``: protected, 8-byte IVs, the package's
  KID), and the ``moov`` gets a ``pssh`` of the W3C common system (``1077efec-…``) naming the KID: the
  init data a ClearKey CDM gets (``"cenc"`` init data type). No sample is in it.
- **Media segments** (:func:`encrypt_segment`): every sample of every fragment is encrypted; each
  ``traf`` gets ``saiz``, ``saio`` and ``senc`` (the IV and, for video, the subsamples of each sample),
  so the ``moof`` grows: the ``trun`` data offsets and the ``sidx`` referenced sizes grow by as much
  (``mdat`` keeps its length: CTR does not pad). Chunks' fragments are moved on the title's timeline
  (``fragments.shift_fragments``) before they are uploaded, so the boxes added here are never moved.
- **Subsamples** (video, as CMAF requires for NAL-structured video): each NAL unit's length field and
  header stay clear, and so does a non-VCL unit (parameter sets, SEI) whole; of a slice, the bytes after
  its header are encrypted in whole 16-byte blocks, the remainder (under a block) left clear before
  them. Audio samples are encrypted whole.
- **IVs** (8 bytes, the counter block being IV || 64-bit block counter, so no two samples' keystreams
  meet unless their IVs are equal): each segment draws a random 64-bit base; sample ``i`` of the segment
  has IV ``base + i`` (mod 2^64). Random rather than derived from the segment's name: a rendition encoded
  again (a retry) may make other bytes under the same name, and the same IV over other bytes would leak
  their XOR. The chance that two of a package's samples share an IV is about n^2/2^65 (n samples in all
  of its renditions): under 10^-7 for ten hours of a six-rung ladder with sound.
- H.264 and HEVC only: AV1's CENC (encrypting tile data only, OBU by OBU) is not done; a cenc package
  with an AV1 rung is refused when requested (``mpr_common.jobs``)."""

from __future__ import annotations

import os
import struct
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from mpr_common.content_keys import CONTENT_KEY_BYTES

from .cmaf import init_name, iter_boxes

SCHEME = b"cenc"
IV_BYTES = 8
KID_BYTES = 16
# The W3C "common" protection system (https://www.w3.org/TR/eme-initdata-cenc/): its pssh names the
# KIDs; ClearKey CDMs take it as "cenc" init data.
COMMON_SYSTEM_ID = bytes.fromhex("1077efecc0b24d02ace33c1e52e2fb4b")
_VISUAL = {"avc1": 1, "avc3": 1, "hvc1": 2, "hev1": 2}  # sample entry -> bytes of a NAL unit header
_AUDIO = ("mp4a",)
_VISUAL_ENTRY = 78  # bytes of a VisualSampleEntry before its child boxes
_AUDIO_ENTRY = 28
_MAX_CLEAR = 0xFFFF  # BytesOfClearData is 16 bits
_CONTAINERS = ("moov", "trak", "mdia", "minf", "stbl")


def _box(kind: bytes, payload: bytes) -> bytes:
    return struct.pack(">I4s", 8 + len(payload), kind) + payload


def _full(kind: bytes, version: int, flags: int, payload: bytes) -> bytes:
    return _box(kind, struct.pack(">I", (version << 24) | flags) + payload)


def _child(data: bytes, start: int, end: int, kind: str) -> tuple[int, int] | None:
    return next(((s, e) for k, s, e in iter_boxes(data, start, end) if k == kind), None)


# --- the init segment ----------------------------------------------------------------------------------


def pssh(kid: bytes) -> bytes:
    """The common system's pssh (version 1) naming ``kid``: what a ClearKey CDM is initialised with."""
    return _full(b"pssh", 1, 0, COMMON_SYSTEM_ID + struct.pack(">I", 1) + kid + struct.pack(">I", 0))


def _sinf(fourcc: bytes, kid: bytes) -> bytes:
    tenc = _full(b"tenc", 0, 0, bytes([0, 0, 1, IV_BYTES]) + kid)
    schm = _full(b"schm", 0, 0, SCHEME + struct.pack(">I", 0x10000))
    return _box(b"sinf", _box(b"frma", fourcc) + schm + _box(b"schi", tenc))


def protect_init(data: bytes, kid: bytes) -> bytes:
    """An init segment made to announce CENC under ``kid``. Raises ValueError for what it cannot
    protect (no moov, a codec other than H.264, HEVC or AAC, an entry already protected)."""
    if len(kid) != KID_BYTES:
        raise ValueError(f"a KID is {KID_BYTES} bytes")
    out = bytearray()
    found = False
    for kind, s, e in iter_boxes(data):
        if kind == "moov":
            out += _box(b"moov", _protect_container(data, s, e, 0, kid) + pssh(kid))
            found = True
        else:
            out += data[s - 8 : e]
    if not found:
        raise ValueError("init segment has no moov box")
    return bytes(out)


def _protect_container(data: bytes, start: int, end: int, depth: int, kid: bytes) -> bytes:
    """The payload of ``_CONTAINERS[depth]`` with the sample entries under it protected."""
    out = bytearray()
    for kind, s, e in iter_boxes(data, start, end):
        if depth + 1 < len(_CONTAINERS) and kind == _CONTAINERS[depth + 1]:
            out += _box(kind.encode(), _protect_container(data, s, e, depth + 1, kid))
        elif kind == "stsd":
            out += _box(
                b"stsd",
                data[s : s + 8] + b"".join(_protect_entry(data, x, kid) for x in iter_boxes(data, s + 8, e)),
            )
        elif kind == "pssh" and depth == 0:
            continue  # replaced by ours
        else:
            out += data[s - 8 : e]
    return bytes(out)


def _protect_entry(data: bytes, entry: tuple[str, int, int], kid: bytes) -> bytes:
    fourcc, s, e = entry
    if fourcc in _VISUAL:
        return _box(b"encv", data[s:e] + _sinf(fourcc.encode(), kid))
    if fourcc in _AUDIO:
        return _box(b"enca", data[s:e] + _sinf(fourcc.encode(), kid))
    raise ValueError(f"CENC of {fourcc!r} samples is not supported (H.264, HEVC and AAC are)")


@dataclass(frozen=True, slots=True)
class Track:
    """What encrypting a track's samples needs of its init segment: the bytes of a NAL unit's length
    field and header (video), None for audio (samples encrypted whole)."""

    nal_length: int | None = None
    nal_header: int = 1


def read_track(init: bytes) -> Track:
    """The :class:`Track` of a (clear) init segment's first sample entry."""
    span = _child(init, 0, len(init), "moov")
    for kind in ("trak", "mdia", "minf", "stbl", "stsd"):
        span = _child(init, *span, kind) if span else None
    stsd = span
    entry = next(iter_boxes(init, stsd[0] + 8, stsd[1]), None) if stsd else None
    if entry is None:
        raise ValueError("init segment has no sample entry")
    fourcc, s, e = entry
    if fourcc in _AUDIO:
        return Track()
    if fourcc not in _VISUAL:
        raise ValueError(f"CENC of {fourcc!r} samples is not supported (H.264, HEVC and AAC are)")
    config = _child(init, s + _VISUAL_ENTRY, e, "avcC" if _VISUAL[fourcc] == 1 else "hvcC")
    if config is None:
        raise ValueError(f"{fourcc} sample entry has no decoder configuration")
    at = config[0] + (4 if _VISUAL[fourcc] == 1 else 21)
    if at >= config[1]:
        raise ValueError("decoder configuration too short")
    return Track(nal_length=(init[at] & 3) + 1, nal_header=_VISUAL[fourcc])


# --- samples ---------------------------------------------------------------------------------------------


def _is_vcl(header: int, nal_header: int) -> bool:
    if nal_header == 1:
        return 1 <= header & 0x1F <= 5  # H.264 coded slices
    return (header >> 1) & 0x3F < 32  # HEVC VCL units


def subsamples(sample: bytes, track: Track) -> list[tuple[int, int]]:
    """(clear, protected) byte counts covering ``sample``: see the module's description. Raises
    ValueError when the NAL units' lengths do not add up to the sample."""
    assert track.nal_length is not None
    out: list[tuple[int, int]] = []
    clear = pos = 0
    size = len(sample)
    while pos < size:
        if pos + track.nal_length > size:
            raise ValueError("a NAL unit's length field runs past its sample")
        length = int.from_bytes(sample[pos : pos + track.nal_length], "big")
        unit = track.nal_length + length
        if length < track.nal_header or pos + unit > size:
            raise ValueError("a NAL unit runs past its sample")
        body = length - track.nal_header
        protected = body - body % 16 if _is_vcl(sample[pos + track.nal_length], track.nal_header) else 0
        clear += unit - protected
        if protected:
            while clear > _MAX_CLEAR:
                out.append((_MAX_CLEAR, 0))
                clear -= _MAX_CLEAR
            out.append((clear, protected))
            clear = 0
        pos += unit
    while clear > _MAX_CLEAR:
        out.append((_MAX_CLEAR, 0))
        clear -= _MAX_CLEAR
    if clear or not out:
        out.append((clear, 0))
    return out


def _ctr(key: bytes, iv: bytes, data: bytes) -> bytes:
    enc = Cipher(algorithms.AES(key), modes.CTR(iv + bytes(16 - len(iv)))).encryptor()
    return enc.update(data) + enc.finalize()


def crypt_sample(sample: bytes, key: bytes, iv: bytes, parts: list[tuple[int, int]] | None) -> bytes:
    """``sample`` encrypted (or decrypted: CTR is its own inverse) with the keystream of ``iv`` running
    over its protected bytes only, in order; ``parts`` None: the whole sample."""
    if parts is None:
        return _ctr(key, iv, sample)
    spans, pos = [], 0
    for clear, protected in parts:
        pos += clear
        spans.append((pos, pos + protected))
        pos += protected
    if pos != len(sample):
        raise ValueError("subsamples do not cover the sample")
    stream = _ctr(key, iv, b"".join(sample[a:b] for a, b in spans))
    out, at = bytearray(sample), 0
    for a, b in spans:
        out[a:b] = stream[at : at + b - a]
        at += b - a
    return bytes(out)


# --- media segments --------------------------------------------------------------------------------------


@dataclass
class _Fragment:
    """One traf's samples (absolute byte ranges in the segment) and where its trun data offsets are."""

    ranges: list[tuple[int, int]] = field(default_factory=list)
    offsets: list[int] = field(default_factory=list)  # payload positions of trun data_offset fields


def _read_traf(data: bytes, moof: int, s: int, e: int, *, encrypted: bool = False) -> _Fragment:
    """``encrypted``: the traf has its aux boxes (read back); else it must not (encrypted once only)."""
    frag = _Fragment()
    tfhd = _child(data, s, e, "tfhd")
    if tfhd is None:
        raise ValueError("traf without tfhd")
    flags = int.from_bytes(data[tfhd[0] + 1 : tfhd[0] + 4], "big")
    if flags & 0x01:
        raise ValueError("tfhd with an explicit base data offset (CMAF bases on the moof)")
    pos = tfhd[0] + 8 + (4 if flags & 0x02 else 0) + (4 if flags & 0x08 else 0)
    default_size = struct.unpack_from(">I", data, pos)[0] if flags & 0x10 else None
    for kind, ts, _ in iter_boxes(data, s, e):
        if kind in ("senc", "saiz", "saio") and not encrypted:
            raise ValueError("the fragment is encrypted already")
        if kind == "trun":
            frag.offsets.append(ts + 8)
            frag.ranges += _trun_ranges(data, moof, ts, default_size)
    if frag.ranges and frag.ranges[-1][1] > len(data):
        raise ValueError("samples run past the segment")
    return frag


def _trun_ranges(data: bytes, moof: int, ts: int, default_size: int | None) -> list[tuple[int, int]]:
    """The byte ranges of a trun's samples (payload at ``ts``), its data offset from the moof's start."""
    tflags = int.from_bytes(data[ts + 1 : ts + 4], "big")
    count = struct.unpack_from(">I", data, ts + 4)[0]
    if not tflags & 0x01:
        raise ValueError("trun without a data offset")
    at = moof + struct.unpack_from(">i", data, ts + 8)[0]
    pos = ts + 12 + (4 if tflags & 0x04 else 0) + (4 if tflags & 0x100 else 0)
    per = 4 * bin(tflags & 0xF00).count("1")
    if not tflags & 0x200 and default_size is None:
        raise ValueError("sample sizes are neither in the trun nor the tfhd")
    ranges = []
    for i in range(count):
        size = struct.unpack_from(">I", data, pos + i * per)[0] if tflags & 0x200 else default_size
        assert size is not None
        ranges.append((at, at + size))
        at += size
    return ranges


def _aux_boxes(ivs: list[bytes], parts: list[list[tuple[int, int]] | None], senc_at: int) -> bytes:
    """saiz, saio and senc of a traf whose senc box begins ``senc_at`` bytes after its moof's start."""
    video = any(p is not None for p in parts)
    infos = []
    for iv, p in zip(ivs, parts, strict=True):
        info = iv
        if video:
            assert p is not None
            info += struct.pack(">H", len(p)) + b"".join(struct.pack(">HI", c, n) for c, n in p)
        infos.append(info)
    sizes = {len(i) for i in infos}
    if len(sizes) == 1:
        saiz = _full(b"saiz", 0, 0, struct.pack(">BI", sizes.pop(), len(infos)))
    else:
        saiz = _full(b"saiz", 0, 0, struct.pack(">BI", 0, len(infos)) + bytes(len(i) for i in infos))
    saio_len = 8 + 4 + 4 + 4
    first_info = senc_at + len(saiz) + saio_len + 8 + 4 + 4  # past senc's header, flags and count
    saio = _full(b"saio", 0, 0, struct.pack(">II", 1, first_info))
    senc = _full(b"senc", 0, 0x2 if video else 0, struct.pack(">I", len(infos)) + b"".join(infos))
    return saiz + saio + senc


def encrypt_segment(data: bytes, key: bytes, track: Track, base_iv: int | None = None) -> bytes:
    """A media segment with its samples encrypted under ``key`` and their IVs and subsamples in each
    ``traf`` (``base_iv``: the first sample's IV, random when None). Raises ValueError when ``data`` is
    not a clear CMAF media segment."""
    if len(key) != CONTENT_KEY_BYTES:
        raise ValueError(f"an AES-128 key is {CONTENT_KEY_BYTES} bytes")
    ivs = _IVs(int.from_bytes(os.urandom(IV_BYTES), "big") if base_iv is None else base_iv)
    boxes = list(iter_boxes(data))
    body = bytearray(data)  # its samples encrypted in place: mdat keeps its length
    grown: list[int] = []  # bytes each moof grows by, in order
    rebuilt: dict[int, bytes] = {}  # moof start -> its new box
    for kind, s, e in boxes:
        if kind == "moof":
            rebuilt[s - 8] = _encrypt_moof(data, body, s, e, key, track, ivs)
            grown.append(len(rebuilt[s - 8]) - (e - s + 8))
    if not grown:
        raise ValueError("not a media segment: no moof box")
    out = bytearray()
    start = 0  # boxes follow one another from the segment's start
    for kind, s, e in boxes:
        if kind == "moof":
            out += rebuilt[start]
        elif kind == "sidx":
            out += _grown_sidx(data, start, s, e, grown)
        else:
            out += body[start:e]
        start = e
    return bytes(out)


@dataclass
class _IVs:
    """A segment's IVs: its base, then one more for each sample (mod 2^64)."""

    base: int
    index: int = 0

    def next(self) -> bytes:
        iv = ((self.base + self.index) % (1 << 64)).to_bytes(IV_BYTES, "big")
        self.index += 1
        return iv


def _encrypt_moof(data: bytes, body: bytearray, s: int, e: int, key: bytes, track: Track, ivs: _IVs) -> bytes:
    """The moof (payload ``data[s:e]``) with aux boxes in each traf and its trun data offsets moved past
    them; its samples encrypted into ``body``."""
    moof = s - 8
    payload = bytearray()
    offsets: list[int] = []  # positions of trun data offsets in the new moof
    for kind, s2, e2 in iter_boxes(data, s, e):
        if kind != "traf":
            payload += data[s2 - 8 : e2]
            continue
        frag = _read_traf(data, moof, s2, e2)
        sample_ivs, parts = [], []
        for a, b in frag.ranges:
            iv = ivs.next()
            p = subsamples(data[a:b], track) if track.nal_length is not None else None
            body[a:b] = crypt_sample(data[a:b], key, iv, p)
            sample_ivs.append(iv)
            parts.append(p)
        traf_at = 8 + len(payload)  # from the moof's start to the traf's
        inner = data[s2:e2]
        offsets += [traf_at + 8 + (o - s2) for o in frag.offsets]
        payload += _box(b"traf", inner + _aux_boxes(sample_ivs, parts, traf_at + 8 + len(inner)))
    new = bytearray(_box(b"moof", bytes(payload)))
    delta = len(new) - (e - moof)
    for o in offsets:
        struct.pack_into(">i", new, o, struct.unpack_from(">i", new, o)[0] + delta)
    return bytes(new)


def _grown_sidx(data: bytes, start: int, s: int, e: int, grown: list[int]) -> bytes:
    """The segment index with each reference's size grown by its moof's growth (one reference per
    fragment, in order, as FFmpeg writes them)."""
    box = bytearray(data[start:e])
    head = s - start
    version = data[s]
    at = head + 4 + 4 + 4 + (16 if version else 8)  # flags, reference ID, timescale, times
    _, count = struct.unpack_from(">HH", box, at)
    if count != len(grown):
        raise ValueError(f"sidx has {count} references for {len(grown)} fragments")
    for i, delta in enumerate(grown):
        pos = at + 4 + 12 * i
        word = struct.unpack_from(">I", box, pos)[0]
        size = (word & 0x7FFFFFFF) + delta
        if word & 0x80000000 or size >= 1 << 31:
            raise ValueError("sidx references another index or overflows")
        struct.pack_into(">I", box, pos, size)
    return bytes(box)


# --- reading back (what a player does; the tests check segments with it) -------------------------------------


def iter_sample_info(data: bytes) -> Iterator[tuple[tuple[int, int], bytes, list[tuple[int, int]] | None]]:
    """(byte range, IV, subsamples or None) of each sample of an encrypted media segment, from its senc."""
    for kind, s, e in iter_boxes(data):
        if kind != "moof":
            continue
        for k2, s2, e2 in iter_boxes(data, s, e):
            if k2 != "traf":
                continue
            frag = _read_traf(data, s - 8, s2, e2, encrypted=True)
            senc = _child(data, s2, e2, "senc")
            if senc is None:
                raise ValueError("traf without senc")
            flags = int.from_bytes(data[senc[0] + 1 : senc[0] + 4], "big")
            (count,) = struct.unpack_from(">I", data, senc[0] + 4)
            if count != len(frag.ranges):
                raise ValueError("senc counts other samples than the trun")
            pos = senc[0] + 8
            for r in frag.ranges:
                iv = data[pos : pos + IV_BYTES]
                pos += IV_BYTES
                parts = None
                if flags & 0x2:
                    (n,) = struct.unpack_from(">H", data, pos)
                    parts = [struct.unpack_from(">HI", data, pos + 2 + 6 * i) for i in range(n)]
                    pos += 2 + 6 * n
                yield r, iv, parts


def decrypt_segment(data: bytes, key: bytes) -> bytes:
    """The segment's samples in clear (its boxes as they are): what a CDM does with them."""
    out = bytearray(data)
    for (a, b), iv, parts in iter_sample_info(data):
        out[a:b] = crypt_sample(data[a:b], key, iv, parts)
    return bytes(out)


@dataclass
class CencSealer:
    """What the uploader sends for each file of a cenc rendition: the init segment protected, a media
    segment encrypted (its track read from the init segment beside it, in the work dir), a media
    playlist with its key tag; None (the file as it is) for the rest."""

    key: bytes
    kid: bytes
    playlist: Callable[[str], str]  # a media playlist with its key tag
    _tracks: dict[Path, Track] = field(default_factory=dict)

    def __call__(self, path: Path) -> bytes | None:
        name = path.name
        if name.endswith("_init.mp4"):
            return protect_init(path.read_bytes(), self.kid)
        if name.endswith(".m4s") and "_" in name:
            init = path.parent / init_name(name.rsplit("_", 1)[0])
            track = self._tracks.get(init)
            if track is None:
                track = self._tracks[init] = read_track(init.read_bytes())
            return encrypt_segment(path.read_bytes(), self.key, track)
        if path.suffix == ".m3u8":
            return self.playlist(path.read_text()).encode()
        return None
