"""Playback tokens: what a player shows to get an encrypted package's content key.

    <expires>.<mac>       mac = HMAC-SHA256(API_MEDIA_SECRET, "mpr-key", package id, expires)[:16], base64url

A token is bound to one package and expires; it is minted only by the API, when it serves one of that
package's playlists under a signed folder link (``content_keys.with_key_tokens``: the token written into
each ``#EXT-X-KEY`` URI expires with the link), so whoever may play the package through its signed link
may fetch its key, for as long as the link lives, and nobody else. The secret is the signed links' (one
secret for one capability: the link), under a purpose of its own, so a link's MAC is never a key token.

A token is checked for shape (digits of bounded length, the MAC's alphabet) before ``int()`` and the
constant-time comparison: any string is a 401 (none given) or a 403 with a message, never a 500."""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import time

from mpr_common.errors import MprError, Unauthorized

_MAC_BYTES = 16
_TOKEN = re.compile(r"([0-9]{1,12})\.([A-Za-z0-9_-]{22})")


class KeyRefused(MprError):
    """The token does not grant this package's key (forged, expired, or for another package)."""

    code = 403
    name = "FORBIDDEN"


class PlaybackTokens:
    def __init__(self, secret: bytes) -> None:
        self.secret = secret

    def _mac(self, package_id: str, expires: int) -> str:
        digest = hmac.new(
            self.secret, f"mpr-key\x00{package_id}\x00{expires}".encode(), hashlib.sha256
        ).digest()
        return base64.urlsafe_b64encode(digest[:_MAC_BYTES]).rstrip(b"=").decode()

    def token(self, package_id: str, expires: int) -> str:
        return f"{expires}.{self._mac(package_id, expires)}"

    def check(self, token: str | None, package_id: str, now: float | None = None) -> None:
        """Raise :class:`Unauthorized` without a token, :class:`KeyRefused` unless it grants the key of
        ``package_id`` now."""
        if not token:
            raise Unauthorized("a playback token is needed: play the package through its signed link")
        match = _TOKEN.fullmatch(token)
        if match is None:
            raise KeyRefused("malformed playback token")
        expires, mac = int(match[1]), match[2]
        if not hmac.compare_digest(mac.encode(), self._mac(package_id, expires).encode()):
            raise KeyRefused(f"this playback token does not grant the key of package {package_id!r}")
        if expires < (now if now is not None else time.time()):
            raise KeyRefused("this playback token has expired: ask the API for the package's link again")
