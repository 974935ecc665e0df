"""The API app on fakes (FakeNats, FakeKV; no server, no S3), driven by Litestar's test client: what
the in-process API tests share."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from litestar import Litestar
from litestar.testing import TestClient

from mpr_api.app import create_app, services
from mpr_api.settings import ApiSettings
from tests.fakes import FakeKV, FakeNats


@contextmanager
def in_process_api(token: str | None) -> Iterator[tuple[TestClient, FakeNats, Litestar]]:
    """The client (sending ``token`` as its bearer token; None: an API that accepts no token), the fake
    NATS the app publishes to, and the app."""
    settings = ApiSettings(tokens=frozenset({token}) if token else frozenset())
    nc = FakeNats()
    app = create_app(settings, state=services(settings, nc, FakeKV(), public_s3=None, owners_kv=FakeKV()))
    with TestClient(app, base_url="http://mpr.local") as client:
        if token:
            client.headers["Authorization"] = f"Bearer {token}"
        yield client, nc, app
