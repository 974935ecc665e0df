"""Encrypted packages as the API serves them: each ``#EXT-X-KEY`` URI of a playlist served under a signed
link gets a playback token for its package (:func:`PackageKeys.with_key_tokens`), and the key route hands
the package's 16-byte key to that token only (:meth:`PackageKeys.key`).

The transcoders write ``URI="/media/keys/<package id>"`` (``mpr_common.content_keys.key_uri``). A token
is written only when the playlist lies in that package's own folder and bucket, as its key entry records
them: a playlist elsewhere that names another package's key (a copy, a crafted file) gets no token for it.
Keys are read from ``mpr-content-keys`` (the API may read that bucket, not write it) and opened with
``MPR_KEY_SECRET``; they are never logged."""

from __future__ import annotations

import re

from nats.aio.client import Client

from mpr_common import subjects as s
from mpr_common.content_keys import (
    KEY_PATH_PREFIX,
    KEY_SECRET_ENV,
    LICENSE_DATA_ID,
    LICENSE_PATH_PREFIX,
    ContentKeyRecord,
    ContentKeys,
    KeyUnreadable,
    KeyWrap,
)
from mpr_common.errors import MprError, NotFound, Unavailable
from mpr_common.jobs import MAX_JOB_ID

from .licenses import license_response, parse_license_request
from .media_links import folder_of
from .playback_tokens import PlaybackTokens

_PACKAGE_ID = re.compile(rf"[A-Za-z0-9_-]{{1,{MAX_JOB_ID}}}")
_KEY_TAG = re.compile(r'^(#EXT-X-(?:SESSION-)?KEY:.*\bURI=")([^"]*)(".*)$')
# Where a cenc package's manifests name its licence: the MPD's Laurl elements, the master playlist's
# session data (kinds.package.protection in the transcoder writes them, one a line)
_LICENSE_URL = re.compile(
    rf'^(\s*<dashif:Laurl>|#EXT-X-SESSION-DATA:DATA-ID="{re.escape(LICENSE_DATA_ID)}",VALUE=")'
    rf'{re.escape(LICENSE_PATH_PREFIX)}([^<"]*)(</dashif:Laurl>\s*|"\s*)$'
)


class PackageKeys:
    def __init__(self, nc: Client, key_secret: str | None, tokens: PlaybackTokens) -> None:
        self.nc = nc
        self.wrap = KeyWrap(key_secret) if key_secret else None
        self.tokens = tokens
        self._store: ContentKeys | None = None

    async def _keys(self) -> ContentKeys:
        if self.wrap is None:
            raise Unavailable(f"this API serves no content keys ({KEY_SECRET_ENV} is unset)")
        if self._store is None:  # bound on first use: made by mpr-setup
            self._store = ContentKeys(await self.nc.jetstream().key_value(s.CONTENT_KEYS_KV), self.wrap)
        return self._store

    async def key(self, package_id: str, token: str | None) -> bytes:
        """The package's key for a valid playback token (checked before anything is read)."""
        if _PACKAGE_ID.fullmatch(package_id) is None:
            raise NotFound("no such package")
        self.tokens.check(token, package_id)
        keys = await self._keys()
        try:
            record = await keys.record(package_id)
            if record is None:
                raise NotFound(f"package {package_id} has no content key")
            return keys.key_of(record)
        except KeyUnreadable as exc:
            raise MprError(str(exc)) from None

    async def license(self, package_id: str, token: str | None, body: bytes) -> dict[str, object]:
        """A ClearKey licence of a cenc package for a valid playback token (checked before the body is
        read): the key for its KID when asked for it (``licenses``)."""
        if _PACKAGE_ID.fullmatch(package_id) is None:
            raise NotFound("no such package")
        self.tokens.check(token, package_id)
        asked = parse_license_request(body)
        keys = await self._keys()
        try:
            record = await keys.record(package_id)
            kid = None if record is None else record.kid_bytes()
            if record is None or kid is None:
                raise NotFound(f"package {package_id} has no ClearKey licence (it is not a cenc package)")
            return license_response(asked, kid, keys.key_of(record))
        except KeyUnreadable as exc:
            raise MprError(str(exc)) from None

    async def with_license_tokens(self, text: str, bucket: str, key: str, expires: int, base_url: str) -> str:
        """``text`` (an MPD or master playlist at ``bucket/key``) with each licence URL of a package whose
        folder it is in made absolute and given a playback token expiring at ``expires``."""
        if LICENSE_PATH_PREFIX not in text:
            return text
        records: dict[str, ContentKeyRecord | None] = {}
        out = []
        for line in text.split("\n"):
            match = _LICENSE_URL.match(line)
            if match is not None:
                package_id = match[2]
                if package_id not in records:
                    records[package_id] = await self._record(package_id)
                record = records[package_id]
                if record is not None and _holds(record, bucket, key):
                    token = self.tokens.token(package_id, expires)
                    line = f"{match[1]}{base_url}{LICENSE_PATH_PREFIX}{package_id}?token={token}{match[3]}"
            out.append(line)
        return "\n".join(out)

    async def with_key_tokens(self, text: str, bucket: str, key: str, expires: int, base_url: str) -> str:
        """``text`` (a playlist at ``bucket/key``) with each key URI of a package whose folder it is in
        made absolute (``base_url``) and given a playback token expiring at ``expires``. Lines are
        otherwise kept as they are."""
        if "#EXT-X-" not in text or KEY_PATH_PREFIX not in text:
            return text
        records: dict[str, ContentKeyRecord | None] = {}
        out = []
        for line in text.split("\n"):
            match = _KEY_TAG.match(line.rstrip("\r"))
            if match is not None and match[2].startswith(KEY_PATH_PREFIX):
                package_id = match[2][len(KEY_PATH_PREFIX) :]
                if package_id not in records:
                    records[package_id] = await self._record(package_id)
                record = records[package_id]
                if record is not None and _holds(record, bucket, key):
                    token = self.tokens.token(package_id, expires)
                    uri = f"{base_url}{KEY_PATH_PREFIX}{package_id}?token={token}"
                    line = f"{match[1]}{uri}{match[3]}" + ("\r" if line.endswith("\r") else "")
            out.append(line)
        return "\n".join(out)

    async def _record(self, package_id: str) -> ContentKeyRecord | None:
        if self.wrap is None or _PACKAGE_ID.fullmatch(package_id) is None:
            return None
        try:
            return await (await self._keys()).record(package_id)
        except KeyUnreadable:
            return None


def _holds(record: ContentKeyRecord, bucket: str, key: str) -> bool:
    """Whether the playlist ``bucket/key`` is in the package's folder."""
    folder = record.folder + "/" if record.folder else ""
    return record.bucket == bucket and folder_of(key) == folder
