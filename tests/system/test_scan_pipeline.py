"""The scanner's pipelined scan against a real nats-server and moto's S3 server: every media object is
published once with its scan's end after it, refused keys are reported with the reason, and the
requester gets the keys page by page."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime

import nats
import pytest

from mpr_common import storage
from mpr_common import subjects as s
from mpr_common.codec import decode
from mpr_common.events import ObjectFound, ScanChunk, ScanRequest, ScanStatus
from mpr_common.settings import JobQueueSettings, NatsSettings, S3Settings
from mpr_common.streams import setup_jetstream
from mpr_devstack.s3_store import ObjectStore, StoredObject
from mpr_devstack.servers import MotoServer, NatsServer, free_port
from mpr_scanner.scan import run_scan

pytestmark = pytest.mark.system

N = 1100  # two listing pages


@pytest.fixture(scope="module")
def bucket(tmp_path_factory):
    """moto's server with the objects already in its bucket: written to the store that mpr-dev's S3
    server loads before its port opens (mpr_devstack.s3_server), not sent as 1,100 PUTs (each costs the
    server and boto3 more CPU than the whole scan). The scan only lists them, through moto's own S3 API."""
    store = ObjectStore(tmp_path_factory.mktemp("scan-s3"))
    now, etag = datetime.now(UTC), f'"{hashlib.md5(b"x").hexdigest()}"'
    keys = [f"p/{i:05d}.mp4" for i in range(N)] + ["p/-dash.mp4", "p/notes.txt", "other/a.mp4"]
    for key in keys:
        store.put(StoredObject(bucket="scan-in", key=key, etag=etag, last_modified=now, body=b"x"))
    server = MotoServer(data_dir=store.root).start()
    settings = S3Settings(
        endpoint_url=server.url, bucket_in="scan-in", access_key_id="k", secret_access_key="s"
    )
    client = storage.get_s3_client(settings)
    assert client.list_objects_v2(Bucket="scan-in", Prefix="other/")["KeyCount"] == 1  # loaded
    yield client
    server.stop()


@pytest.fixture
async def js(tmp_path):
    srv = NatsServer(tmp_path / "js", port=free_port(), log_path=tmp_path / "nats.log").start()
    nc = await nats.connect(srv.url)
    js = nc.jetstream()
    await setup_jetstream(js, NatsSettings(url=srv.url), JobQueueSettings())
    yield js
    await nc.close()
    srv.stop()


async def stream(js, subject: str | None = None) -> list:
    """Every message of the objects stream (on ``subject``), in order."""
    last = (await js.stream_info(s.OBJECTS_STREAM)).state.last_seq
    msgs = [await js.get_msg(s.OBJECTS_STREAM, seq) for seq in range(1, last + 1)]
    return [m for m in msgs if subject is None or m.subject == subject]


async def test_a_scan_publishes_each_object_then_its_end_and_streams_keys_to_the_requester(bucket, js):
    chunks: list[ScanChunk] = []

    async def reply(chunk: ScanChunk) -> None:
        chunks.append(chunk)

    req = ScanRequest(scan_id="s1", prefix="p/")
    status = await run_scan(req, js=js, s3=bucket, bucket="scan-in", concurrency=64, reply=reply)
    assert (status.state, status.found, status.refused_count) == ("completed", N, 1)
    assert status.refused[0].key == "p/-dash.mp4" and "-" in status.refused[0].reason

    keys = [k for c in chunks for k in c.keys]
    assert len(keys) == N == len(set(keys)) and len(chunks) >= 3 and chunks[-1].done
    assert [r.key for c in chunks for r in c.refused] == ["p/-dash.mp4"]

    msgs = await stream(js)
    found = [decode(m.data, ObjectFound) for m in msgs if m.subject == s.OBJECT_FOUND]
    assert sorted(o.key for o in found) == sorted(keys) and all(o.scan_id == "s1" for o in found)
    statuses = [(m.seq, decode(m.data, ScanStatus)) for m in msgs if m.subject == s.SCAN_STATUS]
    end_seq, end = statuses[-1]
    assert end.state == "completed" and end_seq == max(m.seq for m in msgs)
    assert chunks[-1].last_seq == end_seq  # the requester waits for the catalog up to here

    # The same scan again (a retry): every publish is dropped as a duplicate; a new scan is not.
    again = await run_scan(req, js=js, s3=bucket, bucket="scan-in", concurrency=64)
    assert again.found == N
    assert len(await stream(js)) == len(msgs)


async def test_a_background_scan_answers_at_once(bucket, js):
    chunks: list[ScanChunk] = []

    async def reply(chunk: ScanChunk) -> None:
        chunks.append(chunk)

    await run_scan(
        ScanRequest(scan_id="bg", prefix="other/", reply_files=False),
        js=js,
        s3=bucket,
        bucket="scan-in",
        concurrency=8,
        reply=reply,
    )
    assert len(chunks) == 1 and chunks[0].done and chunks[0].keys == [] and chunks[0].last_seq > 0


async def test_a_listing_failure_ends_the_scan_failed_with_the_reason(js):
    server = MotoServer().start()
    client = storage.get_s3_client(
        S3Settings(endpoint_url=server.url, access_key_id="k", secret_access_key="s")
    )
    server.stop()  # S3 is gone
    with pytest.raises(Exception, match="Could not connect|Connect"):
        await run_scan(ScanRequest(scan_id="f"), js=js, s3=client, bucket="nope", concurrency=8)
    statuses = [decode(m.data, ScanStatus) for m in await stream(js, s.SCAN_STATUS)]
    assert statuses[-1].state == "failed" and "listing nope failed" in statuses[-1].error
