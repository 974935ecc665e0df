"""moto's S3 server for the tests that need a real S3-compatible server but not the whole stack."""

from __future__ import annotations

import pytest

from mpr_common import storage
from mpr_common.settings import S3Settings
from mpr_devstack.servers import MotoServer


@pytest.fixture(scope="module")
def s3_settings():
    """moto's S3 server on a random loopback port, buckets t-in and t-out (a module overrides it
    where it needs buckets of its own)."""
    server = MotoServer().start()
    settings = S3Settings(
        endpoint_url=server.url,
        bucket_in="t-in",
        bucket_out="t-out",
        access_key_id="k",
        secret_access_key="s",
    )
    storage.ensure_buckets(storage.get_s3_client(settings), "t-in", "t-out")
    yield settings
    server.stop()
