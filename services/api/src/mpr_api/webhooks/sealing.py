"""Webhook secrets at rest: sealed with AES-256-GCM under a key only the API holds, bound to their
subscription's id, so that the KV bucket on disk, its replication and every KV read on the bus carry
ciphertext, and a sealed secret copied onto another subscription does not open there. Opened only in
the API process, to sign a delivery.

The key is ``API_WEBHOOK_KEY`` (any string; HKDF-SHA256 makes the 32-byte key of it); unset, it is
derived from the API's NATS password, which ``make dev`` keeps per work directory. Changing the key
(or, unset, the password) leaves stored secrets unreadable: their deliveries fail until the secrets are
rotated."""

from __future__ import annotations

import base64
import binascii
import logging
import os

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

log = logging.getLogger(__name__)

SEALED_PREFIX = "sealed:v1:"
_INFO = b"mpr webhook secrets v1"
_NONCE_BYTES = 12


class SecretUnreadable(Exception):
    """A stored secret does not open under this key: the key changed, or the value was tampered with."""


class SecretBox:
    def __init__(self, key: bytes) -> None:
        if len(key) != 32:
            raise ValueError("an AES-256 key is 32 bytes")
        self._aead = AESGCM(key)

    @classmethod
    def derive(cls, material: str) -> SecretBox:
        key = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=_INFO).derive(material.encode())
        return cls(key)

    @classmethod
    def of(cls, webhook_key: str | None, nats_password: str | None) -> SecretBox:
        """The key as configured: ``API_WEBHOOK_KEY``, else the API's NATS password."""
        if webhook_key:
            return cls.derive(webhook_key)
        if nats_password:
            return cls.derive("nats-password:" + nats_password)
        # An anonymous bus (no identities) protects nothing on it anyway; still not stored in clear.
        log.warning(
            "neither API_WEBHOOK_KEY nor NATS_PASSWORD is set: webhook secrets sealed with a fixed key"
        )
        return cls.derive("")

    def seal(self, secret: str, subscription_id: str) -> str:
        nonce = os.urandom(_NONCE_BYTES)
        sealed = self._aead.encrypt(nonce, secret.encode(), subscription_id.encode())
        return SEALED_PREFIX + base64.urlsafe_b64encode(nonce + sealed).decode()

    def open(self, stored: str, subscription_id: str) -> str:
        """The clear secret. A value stored before secrets were sealed is returned as it is (it is sealed
        when the subscription is next written)."""
        if not stored.startswith(SEALED_PREFIX):
            return stored
        try:
            raw = base64.urlsafe_b64decode(stored[len(SEALED_PREFIX) :])
            clear = self._aead.decrypt(raw[:_NONCE_BYTES], raw[_NONCE_BYTES:], subscription_id.encode())
        except (InvalidTag, binascii.Error, ValueError):
            raise SecretUnreadable(
                f"the secret of webhook {subscription_id} does not open with this API_WEBHOOK_KEY "
                "(changed?): rotate the webhook's secret"
            ) from None
        return clear.decode()

    def sealed(self, stored: str, subscription_id: str) -> str:
        """``stored`` sealed (a clear one from before sealing is sealed now)."""
        return stored if stored.startswith(SEALED_PREFIX) else self.seal(stored, subscription_id)
