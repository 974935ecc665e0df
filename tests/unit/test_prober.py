"""The catalog's prober: an unreachable S3 defers the probe (asset stays pending), bad media is an error."""

from __future__ import annotations

import asyncio

from mpr_catalog.models import Asset
from mpr_catalog.prober import Prober
from mpr_common.settings import S3Settings
from mpr_common.storage import get_s3_client
from mpr_devstack.servers import MotoServer, free_port


async def test_unreachable_s3_defers_instead_of_failing():
    s3 = get_s3_client(
        S3Settings(endpoint_url=f"http://127.0.0.1:{free_port()}", access_key_id="a", secret_access_key="b")
    )
    done: list = []

    async def on_done(asset, info, error):
        done.append((asset.id, info, error))

    prober = Prober(s3, on_done, concurrency=1, timeout=10, retry_delay=0.1)
    attempts = 0
    real_probe = prober.probe

    async def counting(asset):
        nonlocal attempts
        attempts += 1
        return await real_probe(asset)

    prober.probe = counting
    prober.start()
    prober.submit(Asset(id="a" * 32, bucket="mpr-media-in", key="x.mp4", etag="e"))
    await asyncio.sleep(1.5)
    await prober.stop()
    assert attempts >= 2 and done == []  # retried, never recorded as a probe error


async def test_bad_media_is_a_probe_error():
    server = MotoServer().start()
    try:
        s3 = get_s3_client(S3Settings(endpoint_url=server.url, access_key_id="a", secret_access_key="b"))
        s3.create_bucket(Bucket="probe-in")
        s3.put_object(Bucket="probe-in", Key="bad.mp4", Body=b"\x00" * 2048)
        done: list = []

        async def on_done(asset, info, error):
            done.append((info, error))

        prober = Prober(s3, on_done, concurrency=1, timeout=10)
        prober.start()
        prober.submit(Asset(id="b" * 32, bucket="probe-in", key="bad.mp4", etag="e"))
        for _ in range(100):
            if done:
                break
            await asyncio.sleep(0.05)
        await prober.stop()
        ((info, error),) = done
        assert info is None and error
    finally:
        server.stop()
