"""The embedded S3 server's range reads (mpr_devstack.s3_ranges): a GET answers the bytes and headers
moto answered before, and reads from the object only what it sends, where moto read the whole object
for every request (FFmpeg reopens a source at each seek: a chunked package of a 290 MB source read it
hundreds of times)."""

from __future__ import annotations

import http.client
import os
import threading
import time
from collections.abc import Iterator

import boto3
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from moto.core.models import DEFAULT_ACCOUNT_ID
from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app
from moto.s3.models import FakeKey, s3_backends
from moto.s3.responses import S3Response
from werkzeug.serving import make_server

from mpr_devstack import s3_ranges

BUCKET = "ranges"
SMALL = os.urandom(70_001)
BIG_SIZE = 48 << 20


class Server:
    def __init__(self) -> None:
        backend = s3_backends[DEFAULT_ACCOUNT_ID]["aws"]
        backend.reset()
        backend.create_bucket(BUCKET, "us-east-1")
        backend.put_object(BUCKET, "small", SMALL)
        backend.put_object(BUCKET, "big", b"\0" * BIG_SIZE)
        app = DomainDispatcherApplication(create_backend_app)
        self.http = make_server("127.0.0.1", 0, app, threaded=True)
        threading.Thread(target=self.http.serve_forever, daemon=True).start()
        self.read = 0  # bytes the bodies read from objects
        self.lock = threading.Lock()
        signer = boto3.client(
            "s3",
            endpoint_url=f"http://127.0.0.1:{self.http.server_port}",
            aws_access_key_id="k",
            aws_secret_access_key="s",
            region_name="us-east-1",
        )
        self.paths = {
            key: signer.generate_presigned_url("get_object", Params={"Bucket": BUCKET, "Key": key}).partition(
                str(self.http.server_port)
            )[2]
            for key in ("small", "big")
        }

    def get(self, key: str, headers: dict[str, str]) -> tuple[int, dict[str, str], bytes]:
        conn = http.client.HTTPConnection("127.0.0.1", self.http.server_port, timeout=30)
        try:
            conn.request("GET", self.paths[key], headers=headers)
            r = conn.getresponse()
            return r.status, {k.lower(): v for k, v in r.getheaders()}, r.read()
        finally:
            conn.close()


@pytest.fixture(scope="module")
def server() -> Iterator[Server]:
    # Patched in this process for this module only: in-process moto elsewhere wants bytes.
    value, get_object = FakeKey.value, S3Response.get_object
    read = s3_ranges.ObjectBody.read
    s3_ranges.install()
    srv = Server()

    def counted(body: s3_ranges.ObjectBody, offset: int, size: int) -> bytes:
        data = read(body, offset, size)
        with srv.lock:
            srv.read += len(data)
        return data

    s3_ranges.ObjectBody.read = counted  # type: ignore[method-assign]
    try:
        yield srv
    finally:
        srv.http.shutdown()
        s3_ranges.ObjectBody.read = read  # type: ignore[method-assign]
        FakeKey.value, S3Response.get_object = value, get_object  # type: ignore[method-assign]
        s3_ranges._installed = False
        s3_backends[DEFAULT_ACCOUNT_ID]["aws"].reset()


def expected(spec: str, data: bytes) -> tuple[int, bytes] | None:
    """RFC 9110's single byte range over ``data``: (start, bytes), or None when unsatisfiable."""
    first, _, last = spec.partition("-")
    n = len(data)
    if first == "":
        start = max(0, n - int(last))
        return (start, data[start:]) if int(last) > 0 and n else None
    start = int(first)
    end = n - 1 if last == "" else min(int(last), n - 1)
    return (start, data[start : end + 1]) if start < n else None


ranges = st.one_of(
    st.builds(lambda a, b: f"{a}-{a + b}", st.integers(0, 80_000), st.integers(0, 80_000)),
    st.builds(lambda a: f"{a}-", st.integers(0, 80_000)),
    st.builds(lambda n: f"-{n}", st.integers(1, 80_000)),
)


@settings(max_examples=60, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(spec=ranges)
def test_a_range_answers_the_bytes_and_headers_of_the_range(server, spec):
    status, headers, body = server.get("small", {"Range": f"bytes={spec}"})
    want = expected(spec, SMALL)
    if want is None:
        assert status == 416, (spec, status)
        return
    start, data = want
    assert status == 206, (spec, status, body[:200])
    assert body == data
    assert headers["content-length"] == str(len(data))
    assert headers["content-range"] == f"bytes {start}-{start + len(data) - 1}/{len(SMALL)}"
    assert headers["etag"].strip('"')


def test_a_whole_get_and_an_unparsed_range_answer_the_whole_object(server):
    for headers in ({}, {"Range": "bytes=0-5,10-20"}, {"Range": "bytes=x-y"}):
        status, got, body = server.get("small", headers)
        assert (status, body, got["content-length"]) == (200, SMALL, str(len(SMALL))), headers


def test_a_range_reads_only_the_range_and_a_client_that_leaves_stops_the_reading(server):
    server.read = 0
    status, _, body = server.get("big", {"Range": "bytes=1000-1999"})
    assert (status, len(body), server.read) == (206, 1000, 1000)

    # FFmpeg opens with "bytes=0-", reads what it needs and closes (or seeks: a new request)
    server.read = 0
    conn = http.client.HTTPConnection("127.0.0.1", server.http.server_port, timeout=30)
    conn.request("GET", server.paths["big"], headers={"Range": "bytes=0-"})
    r = conn.getresponse()
    assert r.status == 206 and r.getheader("content-length") == str(BIG_SIZE)
    assert len(r.read(64 << 10)) == 64 << 10
    conn.close()
    r.close()
    # what the server had read ahead into the sockets' buffers, not the 48 MiB object
    time.sleep(0.5)
    assert server.read < BIG_SIZE // 3, server.read
