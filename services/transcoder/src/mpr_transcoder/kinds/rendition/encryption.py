"""HLS AES-128 of a package's renditions: every media segment (``<name>_NNNNN.m4s``) encrypted whole with
AES-128-CBC and PKCS#7 padding under the package's content key (``mpr_common.content_keys``), and each
media playlist naming the key (``#EXT-X-KEY:METHOD=AES-128``) before every segment.

- **The IV is the segment's media sequence number** (a 128-bit big-endian integer), which is also the
  number in its name: FFmpeg numbers an unchunked rendition's segments from the playlist's media sequence
  (0), and a chunk's from its first segment in the title, so every chunk encrypts its own segments
  independently and the stitched title is consistent. That is the IV RFC 8216 (4.3.2.4) implies when the
  tag has none; it is written anyway (``IV=0x…``), one tag per segment, so that a player never has to
  count, and :func:`keyed_playlist` refuses a playlist whose names and sequence numbers part.
- **The init segment stays clear**: the playlist's ``#EXT-X-MAP`` comes before the first ``#EXT-X-KEY``,
  so no key applies to it (RFC 8216 4.3.2.5: a Media Initialization Section is encrypted only under a key
  tag before it); it holds no media sample, only the track's description (codec, size). hls.js and
  FFmpeg's HLS demuxer read it clear and decrypt each segment before demuxing it.
- **Encrypted as uploaded**: the files in the work dir stay clear (describing the rendition reads their
  boxes; a chunk's fragments are rewritten in place before that), and the uploader sends what
  :class:`SegmentSealer` makes of each file. A segment in S3 is therefore never readable as fMP4 (its
  first bytes are ciphertext, not a box header) and PKCS#7 adds 1-16 bytes to it.
- Subtitle tracks (WebVTT) and storyboards are not encrypted: they are not what the package protects,
  and players fetch WebVTT segments outside the media pipeline that decrypts.
- Pure Python (``cryptography``), not FFmpeg's ``-hls_enc``: the key never touches the work dir's disk or
  FFmpeg's command line, and chunks (whose fragments are moved after FFmpeg wrote them) are encrypted by
  the same code as whole renditions."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives import padding
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from mpr_common.content_keys import CONTENT_KEY_BYTES

METHOD = "AES-128"
_BLOCK_BITS = 128
_NUMBERED = re.compile(r"_([0-9]+)\.m4s$")
_MEDIA_SEQUENCE = "#EXT-X-MEDIA-SEQUENCE:"


def segment_iv(sequence: int) -> bytes:
    """The IV of the segment with this media sequence number."""
    if not 0 <= sequence < 1 << 128:
        raise ValueError(f"a media sequence number is 0 to 2^128-1, not {sequence}")
    return sequence.to_bytes(16, "big")


def _cipher(key: bytes, sequence: int) -> Cipher[modes.CBC]:
    if len(key) != CONTENT_KEY_BYTES:
        raise ValueError(f"an AES-128 key is {CONTENT_KEY_BYTES} bytes")
    return Cipher(algorithms.AES(key), modes.CBC(segment_iv(sequence)))


def encrypt_segment(data: bytes, key: bytes, sequence: int) -> bytes:
    padder = padding.PKCS7(_BLOCK_BITS).padder()
    enc = _cipher(key, sequence).encryptor()
    return enc.update(padder.update(data) + padder.finalize()) + enc.finalize()


def decrypt_segment(data: bytes, key: bytes, sequence: int) -> bytes:
    """What a player does (tests check segments with it); raises ValueError when the padding is wrong."""
    dec = _cipher(key, sequence).decryptor()
    unpadder = padding.PKCS7(_BLOCK_BITS).unpadder()
    return unpadder.update(dec.update(data) + dec.finalize()) + unpadder.finalize()


def segment_number(name: str) -> int | None:
    """The number in a media segment's name (``720p_00012.m4s`` → 12); None for any other file."""
    match = _NUMBERED.search(name)
    return None if match is None else int(match[1])


def key_line(uri: str, sequence: int) -> str:
    return f'#EXT-X-KEY:METHOD={METHOD},URI="{uri}",IV=0x{segment_iv(sequence).hex()}'


def keyed_playlist(text: str, uri: str) -> str:
    """A media playlist with an ``#EXT-X-KEY`` before each segment (its ``#EXTINF``), the IV its media
    sequence number; key tags already there are replaced. Raises ValueError when a segment's name
    numbers it otherwise (its bytes were encrypted under its name's number)."""
    lines = [line for line in text.splitlines() if not line.startswith("#EXT-X-KEY:")]
    sequence = next((int(x[len(_MEDIA_SEQUENCE) :]) for x in lines if x.startswith(_MEDIA_SEQUENCE)), 0)
    out: list[str] = []
    pending: list[str] = []  # the tags of the segment whose URI comes next
    mapped = False
    for line in lines:
        if line.startswith("#EXT-X-MAP:"):
            mapped = True
        if line.startswith("#EXTINF:"):
            if not mapped:
                raise ValueError("a media playlist of fMP4 segments names its init segment first")
            pending = [key_line(uri, sequence), line]
            continue
        if pending and line and not line.startswith("#"):
            named = segment_number(line)
            if named is not None and named != sequence:
                raise ValueError(f"segment {line} is number {named} in the playlist's sequence {sequence}")
            out += [*pending, line]
            pending = []
            sequence += 1
            continue
        (pending if pending else out).append(line)
    return "\n".join(out) + "\n"


@dataclass(frozen=True, slots=True)
class SegmentSealer:
    """What the uploader sends for each file of an encrypted rendition: a media segment encrypted under
    its number, a media playlist with its key tags; None (the file as it is) for the rest (the init
    segment, WebVTT)."""

    key: bytes
    key_uri: str

    def __call__(self, path: Path) -> bytes | None:
        number = segment_number(path.name)
        if number is not None:
            return encrypt_segment(path.read_bytes(), self.key, number)
        if path.suffix == ".m3u8":
            return keyed_playlist(path.read_text(), self.key_uri).encode()
        return None
