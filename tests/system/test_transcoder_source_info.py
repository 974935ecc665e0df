"""catalog_probe against a real nats-server (JetStream, the MPR_ASSETS stream as the catalog sees it)."""

from __future__ import annotations

import nats
import pytest

from mpr_common.codec import encode
from mpr_common.events import AssetRegistered, MediaInfo
from mpr_common.streams import stream_configs
from mpr_common.subjects import ASSETS_STREAM, asset_subject
from mpr_devstack.servers import NatsServer
from mpr_transcoder.source_info import catalog_probe

pytestmark = pytest.mark.system

INFO = MediaInfo(format_name="mov,mp4", duration=12.0, video_codec="h264", width=640, height=360, streams=2)


@pytest.fixture(scope="module")
def nats_url(tmp_path_factory):
    server = NatsServer(tmp_path_factory.mktemp("js")).start()
    yield server.url
    server.stop()


@pytest.fixture
async def js(nats_url):
    nc = await nats.connect(nats_url)
    js = nc.jetstream()
    assets = next(c for c in stream_configs() if c.name == ASSETS_STREAM)
    await js.add_stream(assets)  # idempotent with the same config
    yield js
    await nc.close()


async def register(js, bucket: str, key: str, etag: str, info: MediaInfo | None = INFO) -> None:
    event = AssetRegistered(asset_id="a1", bucket=bucket, key=key, etag=etag, size=10, info=info)
    await js.publish(asset_subject(bucket, key), encode(event), stream=ASSETS_STREAM)


async def test_hit_with_the_same_etag(js):
    await register(js, "in", "a/hit.mp4", "etag-1")
    assert await catalog_probe(js, "in", "a/hit.mp4", "etag-1") == INFO


async def test_latest_registration_wins(js):
    await register(js, "in", "a/again.mp4", "old")
    await register(js, "in", "a/again.mp4", "new", MediaInfo(duration=3.0, audio_codec="aac", streams=1))
    got = await catalog_probe(js, "in", "a/again.mp4", "new")
    assert got is not None and got.duration == 3.0
    assert await catalog_probe(js, "in", "a/again.mp4", "old") is None


async def test_etag_mismatch_is_a_miss(js):
    await register(js, "in", "a/changed.mp4", "etag-1")
    assert await catalog_probe(js, "in", "a/changed.mp4", "etag-2") is None


async def test_missing_asset_is_a_miss(js):
    assert await catalog_probe(js, "in", "a/never-registered.mp4", "etag-1") is None
    assert await catalog_probe(js, "other-bucket", "a/hit.mp4", "etag-1") is None


async def test_failed_probe_and_unreadable_data_are_misses(js):
    await register(js, "in", "a/bad.mp4", "etag-1", info=None)
    assert await catalog_probe(js, "in", "a/bad.mp4", "etag-1") is None
    await js.publish(asset_subject("in", "a/garbage.mp4"), b"not json", stream=ASSETS_STREAM)
    assert await catalog_probe(js, "in", "a/garbage.mp4", "etag-1") is None


async def test_nats_errors_are_misses(nats_url):
    nc = await nats.connect(nats_url)
    js = nc.jetstream()
    await nc.close()  # every request now fails
    assert await catalog_probe(js, "in", "a/hit.mp4", "etag-1") is None
