"""moto's S3 server for the tests that need a real S3-compatible server but not the whole stack."""

from __future__ import annotations

import pytest

from mpr_common import storage
from mpr_common.settings import S3Settings
from mpr_devstack.servers import MotoServer


def buckets_on(endpoint_url: str, bucket_in: str, bucket_out: str) -> S3Settings:
    """Settings for a moto server at ``endpoint_url`` (it checks no credential), with the two buckets
    made. A module that runs beside the session stack uses that stack's server (``stack.moto.url``)
    with buckets of its own: a server of its own would cost a start and a stop."""
    settings = S3Settings(
        endpoint_url=endpoint_url,
        bucket_in=bucket_in,
        bucket_out=bucket_out,
        access_key_id="k",
        secret_access_key="s",
    )
    storage.ensure_buckets(storage.get_s3_client(settings), bucket_in, bucket_out)
    return settings


@pytest.fixture(scope="module")
def s3_settings():
    """moto's S3 server on a random loopback port, buckets t-in and t-out (a module overrides it
    where it needs buckets of its own)."""
    server = MotoServer().start()
    yield buckets_on(server.url, "t-in", "t-out")
    server.stop()
