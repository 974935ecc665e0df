"""The API app on fakes (FakeNats, FakeKV; no server, no S3), driven by Litestar's test client: what
the in-process API tests share.

Building the app costs about 0.1 CPU-s (Litestar makes the signature and kwargs models of some 140
route handlers), more than most of these tests take. So a test process builds one app per distinct
settings (:func:`serving`) and each test gives it its own services, fakes and authentication throttle
for as long as it runs: nothing of one test is seen by the next."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager

from litestar import Litestar
from litestar.testing import TestClient

from mpr_api.app import create_app, services
from mpr_api.assets.service import AssetService
from mpr_api.http.auth import AuthThrottle, Gate
from mpr_api.settings import ApiSettings
from mpr_api.state import STATE_KEY, ApiState
from mpr_common.content_keys import ContentKeys, KeyWrap
from tests.fakes import FakeKV, FakeNats

_APPS: dict[ApiSettings, Litestar] = {}  # built without services of their own: see serving
_BUSY: set[int] = set()  # ids of the apps some test is being served by now


def gate_of(app: Litestar) -> Gate:
    """The gate the app's edge layer closed over (app.py: ``middleware=[edge(gate, players)]``)."""
    for layer in app.middleware:
        for cell in getattr(layer, "__closure__", None) or ():
            if isinstance(cell.cell_contents, Gate):
                return cell.cell_contents
    raise AssertionError("the app has no edge layer with a gate")


def keyed_services(settings: ApiSettings) -> tuple[dict[str, object], AssetService, ContentKeys]:
    """The API's services on fakes (for :func:`serving`), their asset service keeping content keys in a
    store of its own (the bucket mpr-setup makes, on the fake bus) wrapped with ``settings.key_secret``;
    also that service and that store, to make the keys a test serves."""
    assert settings.key_secret is not None
    named = services(settings, FakeNats(), FakeKV(), public_s3=None, owners_kv=FakeKV())
    assets = named["assets"]
    assert isinstance(assets, AssetService)
    store = ContentKeys(FakeKV(), KeyWrap(settings.key_secret))
    assets.keys._store = store
    return named, assets, store


@contextmanager
def serving(settings: ApiSettings, state: Mapping[str, object]) -> Iterator[Litestar]:
    """An app for ``settings`` with the services of ``state`` (by name, as ``create_app`` takes them;
    see ``mpr_api.app.services``), and an authentication throttle that nobody has failed yet. Once the
    block ends it serves nothing of them. While one block uses the process's app for these settings,
    another gets an app of its own."""
    app = _APPS.get(settings)
    if app is None:
        app = _APPS[settings] = create_app(settings, state={})
    elif id(app) in _BUSY:
        app = create_app(settings, state={})
    # Handlers read the state from app.state on each request (state_of), so replacing it is enough; the
    # app's lifespan only sets the connection of its own, unused ApiState (None: state={}).
    app.state[STATE_KEY] = ApiState.of(state)
    gate_of(app).throttle = AuthThrottle.from_settings(settings)
    _BUSY.add(id(app))
    try:
        yield app
    finally:
        _BUSY.discard(id(app))
        app.state[STATE_KEY] = ApiState()
        gate_of(app).throttle = AuthThrottle.from_settings(settings)


@contextmanager
def in_process_api(token: str | None) -> Iterator[tuple[TestClient, FakeNats, Litestar]]:
    """The client (sending ``token`` as its bearer token; None: an API that accepts no token), the fake
    NATS the app publishes to, and the app."""
    settings = ApiSettings(tokens=frozenset({token}) if token else frozenset())
    nc = FakeNats()
    state = services(settings, nc, FakeKV(), public_s3=None, owners_kv=FakeKV())
    with serving(settings, state) as app, TestClient(app, base_url="http://mpr.local") as client:
        if token:
            client.headers["Authorization"] = f"Bearer {token}"
        yield client, nc, app
