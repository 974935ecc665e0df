"""The seed's storage API against a real S3-compatible server (moto's) on a random loopback port."""

from __future__ import annotations

import urllib.request

import pytest

from mpr_common import storage
from mpr_common.keys import InvalidKeyError
from tests import moto_s3

pytestmark = pytest.mark.system

s3_settings = moto_s3.s3_settings  # the module's S3 server (a fixture)


@pytest.fixture(scope="module")
def client(s3_settings):
    return storage.get_s3_client(s3_settings)


def test_list_objects_paginates_and_filters(client, s3_settings):
    for i in range(25):
        client.put_object(Bucket="t-in", Key=f"many/v{i:02d}.mp4", Body=b"x")
    client.put_object(Bucket="t-in", Key="many/readme.txt", Body=b"x")
    client.put_object(Bucket="t-in", Key="many/AUDIO.FLAC", Body=b"x")
    objs = list(storage.list_objects(prefix="many/", client=client, settings=s3_settings, page_size=7))
    keys = [o.key for o in objs]
    assert len(keys) == 26 and "many/readme.txt" not in keys and "many/AUDIO.FLAC" in keys
    assert all(o.bucket == "t-in" and o.size == 1 and o.etag for o in objs)
    everything = list(
        storage.list_objects(prefix="many/", extensions=None, client=client, settings=s3_settings)
    )
    assert len(everything) == 27


def test_upload_download_presign(client, s3_settings, tmp_path):
    src = tmp_path / "a.mp4"
    src.write_bytes(b"media-bytes")
    storage.upload_file(src, "x/a.mp4", client=client, settings=s3_settings)
    head = client.head_object(Bucket="t-out", Key="x/a.mp4")
    assert head["ContentType"] == "video/mp4"
    path = storage.download_file(
        "x/a.mp4", tmp_path / "d" / "a.mp4", "t-out", client=client, settings=s3_settings
    )
    assert path.read_bytes() == b"media-bytes"
    tmp = storage.download_to_temp("x/a.mp4", "t-out", client=client, settings=s3_settings, dir=tmp_path)
    try:
        assert tmp.suffix == ".mp4" and tmp.read_bytes() == b"media-bytes"
    finally:
        tmp.unlink()
    url = storage.get_presigned_url("x/a.mp4", "t-out", client=client, settings=s3_settings)
    with urllib.request.urlopen(url) as r:
        assert r.read() == b"media-bytes"


def test_keys_are_validated_before_any_path_is_built(client, s3_settings, tmp_path):
    with pytest.raises(InvalidKeyError):
        storage.download_to_temp("../../etc/passwd.mp4", client=client, settings=s3_settings)
    with pytest.raises(InvalidKeyError):
        storage.download_key_into("a/../../b.mp4", tmp_path, client=client, settings=s3_settings)
    with pytest.raises(InvalidKeyError):
        storage.get_presigned_url("/abs.mp4", client=client, settings=s3_settings)


def test_bucket_names_come_from_env_lazily(monkeypatch):
    monkeypatch.setenv("S3_BUCKET_IN", "custom-in")
    storage._env_settings.cache_clear()
    try:
        assert storage.BUCKET_IN == "custom-in"
        assert storage.BUCKET_OUT == "mpr-media-out"
    finally:
        storage._env_settings.cache_clear()
