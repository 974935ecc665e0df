from pathlib import Path

import pytest

from mpr_common.keys import InvalidKeyError, is_media_key, media_type, safe_local_path, validate_key


@pytest.mark.parametrize(
    "key",
    [
        "video1.mp4",
        "subfolder/video3.mp4",
        "a b/c+d (1).MKV",
        "ünïcode/ファイル.mov",
        "x/.hidden.mp4",
        "a..b.mp4",
    ],
)
def test_valid_keys(key):
    assert validate_key(key) == key


@pytest.mark.parametrize(
    "key,reason",
    [
        ("", "empty"),
        ("/etc/passwd.mp4", "absolute"),
        ("../x.mp4", "'..'"),
        ("a/../../x.mp4", "'..'"),
        ("a/./x.mp4", "'.'"),
        ("a//x.mp4", "empty"),
        ("a\x00b.mp4", "control"),
        ("a\nb.mp4", "control"),
        ("a\u202eb.mp4", "control"),
        ("a\\b.mp4", "backslash"),
        ("-i.mp4", "'-'"),
        ("dir/-vf.mp4", "'-'"),
        ("concat:a.mp4|b.mp4", "protocol"),
        ("file:/etc/passwd.mp4", "protocol"),
        ("x" * 1025, "longer"),
    ],
)
def test_invalid_keys(key, reason):
    with pytest.raises(InvalidKeyError, match=reason):
        validate_key(key)


def test_non_string_key():
    with pytest.raises(InvalidKeyError):
        validate_key(None)


@pytest.mark.parametrize(
    "key,ok,kind",
    [
        ("a.mp4", True, "video"),
        ("a.MP4", True, "video"),
        ("b/c.webm", True, "video"),
        ("x.wmv", True, "video"),
        ("s.flac", True, "audio"),
        ("s.M4A", True, "audio"),
        ("n.txt", False, None),
        ("mp4", False, None),
        ("a.mp4.part", False, None),
    ],
)
def test_media_extensions(key, ok, kind):
    assert is_media_key(key) is ok
    assert media_type(key) == kind


def test_safe_local_path_stays_inside(tmp_path: Path):
    p = safe_local_path(tmp_path, "a/b/c.mp4")
    assert p == (tmp_path / "a/b/c.mp4").resolve()
    with pytest.raises(InvalidKeyError):
        safe_local_path(tmp_path, "../escape.mp4")


def test_safe_local_path_refuses_symlink_escape(tmp_path: Path):
    outside = tmp_path / "outside"
    outside.mkdir()
    base = tmp_path / "base"
    base.mkdir()
    (base / "link").symlink_to(outside)
    with pytest.raises(InvalidKeyError, match="outside"):
        safe_local_path(base, "link/x.mp4")
