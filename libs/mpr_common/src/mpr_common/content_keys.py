"""Content keys of encrypted packages: one random AES-128 key per package, kept in the
``mpr-content-keys`` KV bucket wrapped (AES-256-GCM) under a key-encryption secret that only the
transcoders and the API hold (``MPR_KEY_SECRET``), so neither the stream's files, its replicas nor a KV
read on the bus carry a clear key, and no event ever carries one at all.

- The transcoder that plans a package creates its key once (:meth:`ContentKeys.create`: create-if-absent,
  so a redelivered package, or two transcoders planning it at once, end with the one key) and each
  rendition child reads it back to encrypt its segments.
- The API reads it only to hand the 16 raw bytes to a player holding a playback token for that package
  (``mpr_api.assets.content_key_routes``), and to check, before writing a token into a playlist it serves,
  that the playlist lies in the package's own folder (the record's ``bucket`` and ``folder``).

The wrapping is bound to the package (its id is the AEAD's associated data): a wrapped key copied onto
another package's entry does not open there. A changed ``MPR_KEY_SECRET`` leaves every stored key
unreadable (their packages no longer play): keep it with the other deployment secrets.

The key URI written into playlists (:func:`key_uri`) is the API's path without a token: a player that got
the playlist some other way (the public bucket, a copy) asks the API without a token and is refused."""

from __future__ import annotations

import base64
import binascii
import os
from typing import Literal, NamedTuple

import msgspec
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from nats.js.errors import KeyNotFoundError, KeyWrongLastSequenceError
from nats.js.kv import KeyValue

from .bus import retry_transient

KEY_SECRET_ENV = "MPR_KEY_SECRET"  # the key-encryption secret: the transcoders' and the API's
CONTENT_KEY_BYTES = 16  # AES-128
# What a package may ask for, and what is refused for now with a reason.
EncryptionMethod = Literal["aes-128", "cenc"]
ENCRYPTION_METHODS = ("aes-128", "cenc")
NOT_YET: dict[str, str] = {}
CENC = "cenc"  # CMAF CENC: the key has a KID, and a ClearKey licence serves it (mpr_api.assets.licenses)
KID_BYTES = 16
# Video codecs whose samples a cenc package encrypts (AV1's tile-by-tile encryption is not done).
CENC_VIDEO_CODECS = ("libx264", "libx265")
# The API's route for a package's key (GET <prefix><package id>?token=<playback token>); the
# transcoders write it into the EXT-X-KEY lines of the packages' media playlists.
KEY_PATH_PREFIX = "/media/keys/"
# The API's W3C ClearKey licence route of a cenc package (POST <prefix><package id>?token=<playback
# token>), written without its token into the package's MPD (``Laurl``) and master playlist (the session
# data below); the API adds the token when it serves them under a signed link.
LICENSE_PATH_PREFIX = "/media/licenses/"
LICENSE_DATA_ID = "com.mpr.clearkey-license"  # the master playlist's EXT-X-SESSION-DATA naming the licence

_INFO = b"mpr content keys v1"
_NONCE_BYTES = 12
_WRAPPED_PREFIX = "wrapped:v1:"


def license_uri(package_id: str) -> str:
    """The licence URL of a cenc package's manifests, as stored (the API adds the token)."""
    return LICENSE_PATH_PREFIX + package_id


class PackageKey(NamedTuple):
    """What a rendition encrypts with: the clear key and, for cenc, its KID."""

    key: bytes
    kid: bytes | None = None


class KeyUnreadable(Exception):
    """A stored key does not open: the secret changed, or the entry was tampered with or moved."""


def key_uri(package_id: str) -> str:
    """The key URI of a package's media playlists, as stored (the API adds the token when it serves them)."""
    return KEY_PATH_PREFIX + package_id


class KeyWrap:
    """AES-256-GCM under a key derived (HKDF-SHA256) from ``MPR_KEY_SECRET``, bound to the package."""

    def __init__(self, secret: str) -> None:
        if not secret:
            raise ValueError(f"{KEY_SECRET_ENV} is empty")
        key = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=_INFO).derive(secret.encode())
        self._aead = AESGCM(key)

    def wrap(self, key: bytes, package_id: str) -> str:
        if len(key) != CONTENT_KEY_BYTES:
            raise ValueError(f"a content key is {CONTENT_KEY_BYTES} bytes")
        nonce = os.urandom(_NONCE_BYTES)
        sealed = self._aead.encrypt(nonce, key, package_id.encode())
        return _WRAPPED_PREFIX + base64.urlsafe_b64encode(nonce + sealed).decode()

    def unwrap(self, wrapped: str, package_id: str) -> bytes:
        if not wrapped.startswith(_WRAPPED_PREFIX):
            raise KeyUnreadable(f"the content key of package {package_id} is not a wrapped key")
        try:
            raw = base64.urlsafe_b64decode(wrapped[len(_WRAPPED_PREFIX) :])
            key = self._aead.decrypt(raw[:_NONCE_BYTES], raw[_NONCE_BYTES:], package_id.encode())
        except (InvalidTag, binascii.Error, ValueError):
            raise KeyUnreadable(
                f"the content key of package {package_id} does not open with this {KEY_SECRET_ENV} (changed?)"
            ) from None
        if len(key) != CONTENT_KEY_BYTES:
            raise KeyUnreadable(f"the content key of package {package_id} is not {CONTENT_KEY_BYTES} bytes")
        return key


class ContentKeyRecord(msgspec.Struct, kw_only=True):
    """A package's entry: its key, wrapped, and where the package's files are (the folder its playlists,
    which name the key, must be in)."""

    v: int = 1
    package_id: str
    method: str
    bucket: str
    folder: str  # the package's folder, without its trailing "/" ("" at the top of the bucket)
    wrapped: str
    kid: str | None = None  # a cenc key's ID (16 random bytes, hex): public, it names the key in licences

    def kid_bytes(self) -> bytes | None:
        return None if self.kid is None else bytes.fromhex(self.kid)


_encode = msgspec.json.Encoder().encode
_decode = msgspec.json.Decoder(ContentKeyRecord).decode


class ContentKeys:
    """The ``mpr-content-keys`` bucket, keyed by package id."""

    def __init__(self, kv: KeyValue, wrap: KeyWrap) -> None:
        self.kv = kv
        self.wrap = wrap

    async def create(self, package_id: str, method: str, bucket: str, folder: str) -> bytes:
        """The package's key: made now if it has none, else the one it has (whoever made it)."""
        record = ContentKeyRecord(
            package_id=package_id,
            method=method,
            bucket=bucket,
            folder=folder,
            wrapped=self.wrap.wrap(os.urandom(CONTENT_KEY_BYTES), package_id),
            kid=os.urandom(KID_BYTES).hex() if method == CENC else None,
        )
        try:
            await retry_transient(lambda: self.kv.create(package_id, _encode(record)), "content key")
        except KeyWrongLastSequenceError:  # made before: by an earlier delivery, or another transcoder
            pass
        found = await self.record(package_id)
        if found is None:
            raise KeyUnreadable(f"the content key of package {package_id} vanished once made")
        return self.key_of(found)

    async def record(self, package_id: str) -> ContentKeyRecord | None:
        try:
            entry = await retry_transient(lambda: self.kv.get(package_id), "content key")
        except KeyNotFoundError:
            return None
        try:
            record = _decode(entry.value or b"")
        except msgspec.DecodeError:
            raise KeyUnreadable(f"the content key entry of package {package_id} is malformed") from None
        if record.package_id != package_id:
            raise KeyUnreadable(f"the content key entry of package {package_id} names another package")
        return record

    def key_of(self, record: ContentKeyRecord) -> bytes:
        return self.wrap.unwrap(record.wrapped, record.package_id)

    async def key(self, package_id: str) -> bytes | None:
        """The package's clear key; None when it has none."""
        record = await self.record(package_id)
        return None if record is None else self.key_of(record)

    async def forget(self, package_id: str) -> None:
        """Delete the package's key (a failed or cancelled package's: nothing it encrypted is kept). The
        bucket keeps one revision per key, so the delete marker takes the wrapped key's place."""
        await retry_transient(lambda: self.kv.delete(package_id), "content key")

    async def package_key(self, package_id: str) -> PackageKey | None:
        """The package's clear key and its KID (cenc); None when it has none."""
        record = await self.record(package_id)
        return None if record is None else PackageKey(self.key_of(record), record.kid_bytes())
