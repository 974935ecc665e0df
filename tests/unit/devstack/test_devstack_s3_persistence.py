"""make dev's S3 objects kept on disk (mpr_devstack.s3_store, s3_server): what boto3 writes through the
server is what a restarted server serves, with the same bytes, ETag, Last-Modified, content type and
metadata; a writer killed at any moment leaves the old or the new version of an object."""

from __future__ import annotations

import hashlib
import os
import signal
import tempfile
import threading
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import boto3
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from moto.core.models import DEFAULT_ACCOUNT_ID
from moto.s3.models import s3_backends
from werkzeug.serving import make_server

from mpr_devstack import s3_server
from mpr_devstack.s3_store import MAGIC, CorruptObject, ObjectStore, StoredObject, decode, encode
from mpr_devstack.servers import free_port, wait_until


def _client(url: str):
    return boto3.client(
        "s3",
        endpoint_url=url,
        aws_access_key_id="minioadmin",
        aws_secret_access_key="minioadmin",
        region_name="us-east-1",
    )


def _reset_moto() -> None:
    s3_backends[DEFAULT_ACCOUNT_ID]["aws"].reset()
    s3_backends.bucket_accounts.clear()


class InProcessServer:
    """The persistent server in this process; ``restart`` forgets moto's memory and loads the store,
    as a new process would."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.server = None
        self.thread: threading.Thread | None = None
        self.loaded = 0

    def start(self) -> InProcessServer:
        _reset_moto()
        s3_server.install_hooks()
        store = ObjectStore(self.root)
        self.loaded = s3_server.load(store)
        self.server = make_server("127.0.0.1", 0, s3_server.make_app(store), threaded=True)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        return self

    @property
    def client(self):
        assert self.server is not None
        return _client(f"http://127.0.0.1:{self.server.server_port}")

    def stop(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
            self.server = None

    def restart(self) -> InProcessServer:
        self.stop()
        return self.start()


@pytest.fixture
def server(tmp_path) -> Iterator[InProcessServer]:
    srv = InProcessServer(tmp_path / "s3").start()
    yield srv
    srv.stop()
    _reset_moto()


def _state(client) -> dict:
    """Every object of every bucket as S3 answers it."""
    out: dict = {}
    for b in client.list_buckets()["Buckets"]:
        for o in client.list_objects_v2(Bucket=b["Name"]).get("Contents", []):
            h = client.head_object(Bucket=b["Name"], Key=o["Key"])
            body = client.get_object(Bucket=b["Name"], Key=o["Key"])["Body"].read()
            out[(b["Name"], o["Key"])] = (
                h["ETag"],
                h["LastModified"],
                h["ContentType"],
                h["Metadata"],
                hashlib.sha256(body).hexdigest(),
            )
    return out


def test_objects_survive_a_restart_as_they_were(server):
    c = server.client
    c.create_bucket(Bucket="media-in")
    c.create_bucket(Bucket="media-out")
    c.create_bucket(Bucket="dropped")
    c.put_object(
        Bucket="media-in", Key="a/b c/ü.mp4", Body=b"first", ContentType="video/mp4", Metadata={"who": "me"}
    )
    c.put_object(Bucket="media-in", Key="a/b c/ü.mp4", Body=b"second version", ContentType="video/mp4")
    c.put_object(Bucket="media-in", Key="gone.mp4", Body=b"x")
    c.delete_object(Bucket="media-in", Key="gone.mp4")
    c.put_object(Bucket="media-in", Key="batch/1", Body=b"1")
    c.put_object(Bucket="media-in", Key="batch/2", Body=b"2")
    c.delete_objects(Bucket="media-in", Delete={"Objects": [{"Key": "batch/1"}, {"Key": "batch/2"}]})
    c.copy_object(
        Bucket="media-out",
        Key="copied",
        CopySource={"Bucket": "media-in", "Key": "a/b c/ü.mp4"},
        MetadataDirective="REPLACE",
        ContentType="video/x-copy",
        Metadata={"k": "v"},
    )
    c.delete_bucket(Bucket="dropped")
    # A multipart upload (its ETag is "md5-of-parts-2", not the body's MD5).
    part = os.urandom(5 * 1024 * 1024)
    mp = c.create_multipart_upload(Bucket="media-out", Key="big.bin", ContentType="application/x-big")
    parts = [
        {
            "ETag": c.upload_part(
                Bucket="media-out", Key="big.bin", UploadId=mp["UploadId"], PartNumber=i + 1, Body=body
            )["ETag"],
            "PartNumber": i + 1,
        }
        for i, body in enumerate([part, b"tail"])
    ]
    done = c.complete_multipart_upload(
        Bucket="media-out", Key="big.bin", UploadId=mp["UploadId"], MultipartUpload={"Parts": parts}
    )
    assert done["ETag"].endswith('-2"')
    # An unfinished multipart upload is not an object and is not kept.
    c.create_multipart_upload(Bucket="media-out", Key="unfinished.bin")

    before = _state(c)
    assert set(before) == {("media-in", "a/b c/ü.mp4"), ("media-out", "copied"), ("media-out", "big.bin")}
    assert before[("media-in", "a/b c/ü.mp4")][4] == hashlib.sha256(b"second version").hexdigest()
    assert before[("media-out", "copied")][2:4] == ("video/x-copy", {"k": "v"})

    server.restart()
    c = server.client
    assert server.loaded == 3
    assert {b["Name"] for b in c.list_buckets()["Buckets"]} == {"media-in", "media-out"}
    assert _state(c) == before
    assert c.get_object(Bucket="media-out", Key="big.bin")["Body"].read() == part + b"tail"
    # Deleting after the restart is kept too.
    c.delete_object(Bucket="media-out", Key="copied")
    server.restart()
    assert set(_state(server.client)) == {("media-in", "a/b c/ü.mp4"), ("media-out", "big.bin")}


def test_a_failed_write_leaves_the_previous_version_and_no_temporary_file(server, monkeypatch):
    c = server.client
    c.create_bucket(Bucket="bkt")
    c.put_object(Bucket="bkt", Key="k", Body=b"old")
    real_replace = os.replace

    def crash(src, dst):  # the writer dies between writing the new file and renaming it
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(Exception, match="500|InternalError|Internal Server Error"):
        c.put_object(Bucket="bkt", Key="k", Body=b"new")  # refused: not on disk
    monkeypatch.setattr(os, "replace", real_replace)
    leftovers = [p for p in (server.root / "bkt").iterdir() if p.name.startswith(".tmp-")]
    assert leftovers == []
    server.restart()
    assert server.client.get_object(Bucket="bkt", Key="k")["Body"].read() == b"old"


def test_temporary_files_of_a_killed_writer_are_ignored_and_removed(tmp_path):
    store = ObjectStore(tmp_path)
    obj = StoredObject("bkt", "k", '"e"', datetime.now(UTC), b"body", {"Content-Type": "a/b"})
    store.put(obj)
    torn = store.bucket_dir("bkt") / ".tmp-abc123"
    head, body = encode(obj)
    torn.write_bytes(head + body[:2])  # what a kill -9 mid-write leaves
    assert [o.key for o in ObjectStore(tmp_path).load()] == ["k"]
    assert not torn.exists()
    assert ObjectStore(tmp_path).summary().objects == 1


def _fork_server(port: int, root: Path) -> int:
    """The persistent server in a child process (forked: moto is imported already, so it starts in
    milliseconds), to be killed for real."""
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        try:
            _reset_moto()
            s3_server.install_hooks()
            store = ObjectStore(root)
            s3_server.load(store)
            make_server("127.0.0.1", port, s3_server.make_app(store), threaded=True).serve_forever(0.05)
        finally:
            os._exit(0)
    return pid


def _wait_serving(url: str) -> None:
    def up() -> bool:
        with urllib.request.urlopen(f"{url}/moto-api/", timeout=1) as r:
            return r.status == 200

    wait_until(up, 30, "s3 server")


def test_kill_9_while_writing_keeps_every_acknowledged_write(tmp_path):
    """A server process killed -9 in the middle of a stream of writes to one key: after a restart the
    key holds the last acknowledged body or the one in flight, whole, with its own ETag."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    pid = _fork_server(port, tmp_path)
    try:
        _wait_serving(url)
        c = _client(url)
        c.create_bucket(Bucket="bkt")
        bodies = [bytes([i]) * (64 * 1024 + i) for i in range(1, 250)]
        acked: list[int] = []

        def writer():
            for i, body in enumerate(bodies):
                try:
                    c.put_object(Bucket="bkt", Key="k", Body=body)
                except Exception:
                    return  # the server is gone
                acked.append(i)

        t = threading.Thread(target=writer)
        t.start()
        wait_until(lambda: len(acked) >= 5, 30, "a few acknowledged writes")
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        t.join(60)
        last = acked[-1]
        pid = _fork_server(port, tmp_path)
        _wait_serving(url)
        got = c.get_object(Bucket="bkt", Key="k")
        body = got["Body"].read()
        assert body in (bodies[last], bodies[min(last + 1, len(bodies) - 1)])
        assert got["ETag"] == f'"{hashlib.md5(body).hexdigest()}"'
        assert not list(tmp_path.rglob(".tmp-*"))
    finally:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)


# --- the store's own format: any key, any metadata, any bucket name ------------------------------
keys = st.text(st.characters(blacklist_categories=("Cs",)), min_size=1, max_size=300)
metadata = st.dictionaries(
    st.text("abcdefghijklmnopqrstuvwxyz-_0123456789", min_size=1, max_size=20),
    st.text(st.characters(blacklist_categories=("Cs",)), max_size=50),
    max_size=5,
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(bucket=keys, key=keys, body=st.binary(max_size=2000), meta=metadata)
def test_any_key_round_trips_and_stays_inside_the_store(bucket, key, body, meta):
    with tempfile.TemporaryDirectory() as d:
        root = Path(d) / "s3"
        store = ObjectStore(root)
        path = store.object_path(bucket, key)
        assert path.resolve().is_relative_to(root.resolve()) and path.parent.parent == root
        assert not path.parent.name.startswith(".")  # never a hidden or temporary name
        obj = StoredObject(bucket, key, '"etag"', datetime(2024, 5, 1, tzinfo=UTC), body, meta)
        store.put(obj)
        store.put(obj)  # unchanged: no second write
        (loaded,) = list(ObjectStore(root).load())
        assert loaded == obj
        assert [name for name, _, _ in ObjectStore(root).buckets()] == [bucket]


@given(data=st.binary(max_size=300) | st.builds(lambda b: MAGIC + b, st.binary(max_size=300)))
def test_decoding_garbage_raises_corrupt_object_only(data):
    with pytest.raises(CorruptObject):
        decode("bkt", data)


def test_a_damaged_object_file_is_skipped_not_fatal(tmp_path, capsys):
    store = ObjectStore(tmp_path)
    store.put(StoredObject("bkt", "good", '"e"', datetime.now(UTC), b"ok"))
    store.put(StoredObject("bkt", "bad", '"e"', datetime.now(UTC), b"will be cut"))
    path = store.object_path("bkt", "bad")
    path.write_bytes(path.read_bytes()[:-3])
    assert [o.key for o in ObjectStore(tmp_path).load()] == ["good"]
    assert "skipped" in capsys.readouterr().err


def test_summary_counts_without_loading(tmp_path):
    store = ObjectStore(tmp_path)
    for i in range(3):
        store.put(StoredObject("bkt", f"k{i}", '"e"', datetime.now(UTC), b"x" * 10))
    store.create_bucket("empty", "us-east-1")
    s = ObjectStore(tmp_path).summary()
    assert (s.buckets, s.objects, s.size) == (2, 3, 30)
