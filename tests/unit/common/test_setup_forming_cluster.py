"""``mpr-setup`` against a JetStream cluster that is still forming: a replicated stream cannot be placed
until the meta leader has heard from its peers (400, err_code 10005). Setup asks again (it is
idempotent) instead of failing the deploy or, worse, taking the answer for "exists with another
config" and leaving the stream uncreated."""

from __future__ import annotations

import asyncio

import pytest
from nats.js.errors import BadRequestError, ServerError

from mpr_common import streams
from mpr_common.settings import JobQueueSettings, NatsSettings

FORMING = {
    "code": 400,
    "err_code": streams.NO_PEERS_FOR_PLACEMENT,
    "description": "no suitable peers for placement",
}


def _setup_failing(monkeypatch, errors: list[Exception]) -> list[int]:
    calls: list[int] = []

    async def setup(js, nats, queue) -> None:
        calls.append(1)
        if errors:
            raise errors.pop(0)

    monkeypatch.setattr(streams, "setup_jetstream", setup)
    return calls


def _run(patience: float = 5.0) -> None:
    asyncio.run(streams.setup_when_ready(object(), NatsSettings(), JobQueueSettings(), patience=patience))  # type: ignore[arg-type]


def test_setup_is_asked_again_while_the_cluster_forms(monkeypatch):
    calls = _setup_failing(monkeypatch, [BadRequestError(**FORMING), BadRequestError(**FORMING)])
    _run()
    assert len(calls) == 3


def test_a_refused_config_is_not_asked_again(monkeypatch):
    calls = _setup_failing(monkeypatch, [ServerError(code=500, err_code=10049, description="boom")])
    with pytest.raises(ServerError):
        _run()
    assert len(calls) == 1


def test_setup_gives_up_after_its_patience(monkeypatch):
    calls = _setup_failing(monkeypatch, [BadRequestError(**FORMING) for _ in range(50)])
    with pytest.raises(BadRequestError):
        _run(patience=0.25)
    assert 2 <= len(calls) < 50


class _UnplacedStreams:
    """A JetStream that cannot place streams yet; records whether an update was attempted."""

    def __init__(self) -> None:
        self.updated: list[str] = []

    async def add_stream(self, cfg) -> None:
        raise BadRequestError(**FORMING)

    async def update_stream(self, cfg) -> None:
        self.updated.append(cfg.name)


def test_an_unplaced_stream_is_not_taken_for_an_existing_one():
    js = _UnplacedStreams()
    with pytest.raises(BadRequestError) as err:
        asyncio.run(streams.ensure_streams(js, replicas=3))  # type: ignore[arg-type]
    assert err.value.err_code == streams.NO_PEERS_FOR_PLACEMENT
    assert js.updated == []
