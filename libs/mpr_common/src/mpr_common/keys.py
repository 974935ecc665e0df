"""S3 keys are the identity of media. Validate them before any local path is built."""

from __future__ import annotations

import posixpath
import unicodedata
from pathlib import Path, PurePosixPath

VIDEO_EXTENSIONS = frozenset({".mp4", ".mkv", ".avi", ".mov", ".webm", ".flv", ".wmv", ".m4v"})
AUDIO_EXTENSIONS = frozenset({".mp3", ".wav", ".flac", ".aac", ".ogg", ".m4a"})
MEDIA_EXTENSIONS = VIDEO_EXTENSIONS | AUDIO_EXTENSIONS

MAX_KEY_BYTES = 1024  # S3's own limit


class InvalidKeyError(ValueError):
    """A key that must not be used: the message says why."""


def validate_key(key: object) -> str:
    """Return ``key`` if it is a safe relative S3 key, else raise :class:`InvalidKeyError`.

    Rejected: empty keys, absolute paths, ``..`` or ``.`` segments, empty segments (``a//b``),
    backslashes, control characters, a leading ``-`` in any segment (would read as an option),
    ``scheme:`` prefixes such as ``concat:`` or ``file:``, and keys longer than S3 allows.
    """
    if not isinstance(key, str):
        raise InvalidKeyError("key must be a string")
    if not key:
        raise InvalidKeyError("key is empty")
    if len(key.encode("utf-8")) > MAX_KEY_BYTES:
        raise InvalidKeyError(f"key is longer than {MAX_KEY_BYTES} bytes")
    _check_characters(key)
    if key.startswith("/"):
        raise InvalidKeyError("key is an absolute path")
    _check_segments(key)
    return key


def _check_characters(key: str) -> None:
    # Printable ASCII (the common case) holds no control character: skip the per-character look-up.
    if not (key.isascii() and key.isprintable()):
        for ch in key:
            if unicodedata.category(ch) in ("Cc", "Cf", "Zl", "Zp"):
                raise InvalidKeyError(f"key contains a control character (U+{ord(ch):04X})")
    if "\\" in key:
        raise InvalidKeyError("key contains a backslash")


def _check_segments(key: str) -> None:
    first = key.split("/", 1)[0]
    if ":" in first:
        raise InvalidKeyError("key starts with a protocol prefix (e.g. 'concat:' or 'file:')")
    for segment in key.split("/"):
        if segment in ("", ".", ".."):
            raise InvalidKeyError("key contains an empty, '.' or '..' path segment")
        if segment.startswith("-"):
            raise InvalidKeyError("a key segment begins with '-'")


def extension(key: str) -> str:
    return posixpath.splitext(key)[1].lower()


def is_media_key(key: str, extensions: frozenset[str] = MEDIA_EXTENSIONS) -> bool:
    """True for keys with a supported extension (case-insensitive)."""
    return extension(key) in extensions


def media_type(key: str) -> str | None:
    ext = extension(key)
    if ext in VIDEO_EXTENSIONS:
        return "video"
    if ext in AUDIO_EXTENSIONS:
        return "audio"
    return None


def safe_local_path(base_dir: str | Path, key: str) -> Path:
    """Map a validated key to a path inside ``base_dir``; never outside it."""
    validate_key(key)
    base = Path(base_dir).resolve()
    target = (base / PurePosixPath(key)).resolve()
    if base != target and base not in target.parents:
        raise InvalidKeyError("key resolves outside the working directory")
    return target
