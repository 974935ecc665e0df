"""Webhook secrets are sealed at rest (AES-GCM, bound to their subscription) and opened only to sign."""

from __future__ import annotations

import asyncio
import time

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mpr_api.webhooks.engine import WebhookEngine
from mpr_api.webhooks.model import Attempt, Delivery, Subscription
from mpr_api.webhooks.sealing import SEALED_PREFIX, SecretBox, SecretUnreadable
from mpr_api.webhooks.sender import Outcome
from mpr_api.webhooks.signing import new_secret, verify
from mpr_api.webhooks.store import SubscriptionStore
from mpr_common.codec import decode

BOX = SecretBox.derive("test key")
ids = st.text(alphabet="0123456789abcdef", min_size=32, max_size=32)


@settings(max_examples=200, deadline=None)
@given(secret=st.text(min_size=1, max_size=200), sub_id=ids)
def test_a_sealed_secret_opens_only_with_its_key_and_subscription(secret, sub_id):
    sealed = BOX.seal(secret, sub_id)
    # (a secret of a few characters may occur in any base64 text by chance: only longer ones are looked for)
    assert sealed.startswith(SEALED_PREFIX) and (
        len(secret) < 12 or secret not in sealed[len(SEALED_PREFIX) :]
    )
    assert BOX.open(sealed, sub_id) == secret
    assert BOX.sealed(sealed, sub_id) == sealed  # not sealed twice
    with pytest.raises(SecretUnreadable):
        SecretBox.derive("another key").open(sealed, sub_id)
    with pytest.raises(SecretUnreadable):  # copied onto another subscription
        BOX.open(sealed, ("0" if sub_id[0] != "0" else "1") + sub_id[1:])


@settings(max_examples=200, deadline=None)
@given(garbage=st.text(max_size=300), sub_id=ids)
def test_whatever_is_stored_opens_or_is_refused_cleanly(garbage, sub_id):
    """A value read from the bucket is untrusted input: it opens, or it raises SecretUnreadable."""
    stored = SEALED_PREFIX + garbage
    try:
        BOX.open(stored, sub_id)
    except SecretUnreadable:
        pass


def test_a_tampered_secret_is_refused():
    sealed = BOX.seal(new_secret(), "a" * 32)
    raw = sealed[len(SEALED_PREFIX) :]
    flipped = raw[:-3] + ("A" if raw[-3] != "A" else "B") + raw[-2:]
    with pytest.raises(SecretUnreadable):
        BOX.open(SEALED_PREFIX + flipped, "a" * 32)


def test_the_key_is_the_configured_one():
    sealed = SecretBox.of("configured", "nats-pw").seal("whsec_x", "a" * 32)
    assert SecretBox.of("configured", None).open(sealed, "a" * 32) == "whsec_x"
    with pytest.raises(SecretUnreadable):
        SecretBox.of(None, "nats-pw").open(sealed, "a" * 32)
    from_password = SecretBox.of(None, "nats-pw").seal("whsec_y", "a" * 32)
    assert SecretBox.of(None, "nats-pw").open(from_password, "a" * 32) == "whsec_y"


class FakeKV:
    def __init__(self) -> None:
        self.values: dict[str, tuple[bytes, int]] = {}

    async def create(self, key: str, value: bytes) -> int:
        self.values[key] = (value, 1)
        return 1

    async def get(self, key: str):
        value, revision = self.values[key]
        return Entry(value=value, revision=revision)

    async def update(self, key: str, value: bytes, last: int) -> int:
        assert self.values[key][1] == last
        self.values[key] = (value, last + 1)
        return last + 1


class Entry(msgspec.Struct):
    value: bytes
    revision: int


def _sub(secret: str, previous: str | None = None) -> Subscription:
    return Subscription(
        id="b" * 32,
        url="https://example.com/hook",
        types=["job.completed"],
        created_at=time.time(),
        secret=secret,
        previous_secret=previous,
        previous_secret_until=time.time() + 60 if previous else 0.0,
    )


def test_the_store_writes_no_secret_in_clear_and_seals_old_clear_ones():
    kv = FakeKV()
    store = SubscriptionStore(None, kv, BOX)
    clear = new_secret()

    async def run() -> None:
        await store.create(_sub(clear))  # a caller that forgot to seal: sealed anyway
        raw = kv.values["b" * 32][0]
        assert clear.encode() not in raw and clear.removeprefix("whsec_").encode() not in raw
        # a subscription stored in clear before secrets were sealed: sealed at its next write
        kv.values["b" * 32] = (msgspec.json.encode(_sub(clear)), 5)
        rotated = new_secret()
        await store.update(
            "b" * 32,
            lambda old: msgspec.structs.replace(old, secret=rotated, previous_secret=old.secret),
        )
        raw = kv.values["b" * 32][0]
        assert clear.encode() not in raw and rotated.encode() not in raw
        stored = decode(raw, Subscription)
        assert BOX.open(stored.secret, stored.id) == rotated
        assert stored.previous_secret and BOX.open(stored.previous_secret, stored.id) == clear

    asyncio.run(run())


def test_a_delivery_is_signed_with_the_opened_secrets():
    clear, old = new_secret(), new_secret()
    sub = _sub(BOX.seal(clear, "b" * 32), BOX.seal(old, "b" * 32))
    sent: dict = {}

    class Sender:
        async def post(self, url, body, headers, series=0):
            sent.update(headers=headers, body=body)
            return Outcome(attempt=Attempt(at=0.0, status_code=204))

    store = SubscriptionStore(None, FakeKV(), BOX)
    engine = WebhookEngine(None, store, None, Sender(), None, None)  # type: ignore[arg-type]
    now = time.time()
    d = Delivery(
        id="c" * 32,
        subscription_id=sub.id,
        type="job.completed",
        subject="j",
        event=msgspec.Raw(b'{"id": "x"}'),
        created_at=now,
        updated_at=now,
    )
    asyncio.run(engine.attempt(sub, d))
    assert verify(clear, sent["headers"], sent["body"]) == "c" * 32
    assert verify(old, sent["headers"], sent["body"]) == "c" * 32  # the rotated-out one still signs

    # Under another key the secrets do not open: the attempt fails (to be retried), nothing is sent.
    sent.clear()
    wrong_key = SubscriptionStore(None, FakeKV(), SecretBox.derive("another key"))
    other = WebhookEngine(None, wrong_key, None, Sender(), None, None)  # type: ignore[arg-type]
    outcome = asyncio.run(other.attempt(sub, d))
    assert (
        not sent
        and outcome.attempt.status_code is None
        and "API_WEBHOOK_KEY" in (outcome.attempt.error or "")
    )
