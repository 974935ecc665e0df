"""Signed folder links: how a playlist, a DASH manifest or a thumbnails track plays where it is linked.

A manifest names its media relatively (``720p.m3u8``, ``720p_00000.m4s``, ``storyboard_000.jpg``). A
presigned S3 URL signs one object only, so those relative names resolve to unsigned URLs that S3 refuses.
A signed link instead grants reading every object under one folder of one bucket until it expires:

    /media/s/<token>/<bucket>/<key>       token = <expires>.<n>.<mac>

where the first ``n`` characters of ``<bucket>/<key>`` are the folder granted (``bucket/a/b/``) and
``mac`` = HMAC-SHA256(``API_MEDIA_SECRET``, folder, expires), truncated to 128 bits, base64url. A
relative link inside a manifest served from there resolves under the same token and folder; a key
elsewhere (a sibling folder, ``..``, another bucket) changes the signed characters, so the MAC fails.
The token is only ever checked for reading one named object: it can list or write nothing.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import posixpath
import re
import time
from collections.abc import Callable
from urllib.parse import quote, unquote

from mpr_common.errors import MprError
from mpr_common.keys import extension
from mpr_common.s3_client import S3Client
from mpr_common.storage import get_presigned_url

from ..http.auth import SIGNED_PREFIX
from ..http.request_url import request_base_url

# The text files the API serves itself, so that their relative links resolve under the signed link
# (typed by mpr_common.storage.guess_content_type). Everything else is redirected to S3 (or streamed).
MANIFEST_EXTENSIONS = frozenset({".m3u8", ".mpd", ".vtt"})

_MAC_BYTES = 16
# <expires>.<n>.<mac>: a Unix time, a length no longer than a URL path, an unpadded base64url MAC of
# _MAC_BYTES. Matched before int(), which refuses (ValueError) more than 4,300 digits and would make a
# 500 of a malformed link, and before the MAC is compared.
_TOKEN = re.compile(r"([0-9]{1,12})\.([0-9]{1,6})\.([A-Za-z0-9_-]{22})")


class LinkRefused(MprError):
    """The link does not grant this object (forged, expired, or for another folder)."""

    code = 403
    name = "FORBIDDEN"


def is_manifest(key: str) -> bool:
    return extension(key) in MANIFEST_EXTENSIONS


def folder_of(key: str) -> str:
    """The folder a link to ``key`` grants: its parent, ``""`` (the bucket) for a key at the top."""
    parent, slash, _ = key.rpartition("/")
    return parent + slash


class MediaLinks:
    def __init__(self, secret: bytes, ttl: float, public_url: str | None = None) -> None:
        self.secret = secret
        self.ttl = ttl
        self.public_url = public_url.rstrip("/") if public_url else None

    def _mac(self, granted: str, expires: int) -> str:
        digest = hmac.new(
            self.secret, f"mpr-media\x00{granted}\x00{expires}".encode(), hashlib.sha256
        ).digest()
        return base64.urlsafe_b64encode(digest[:_MAC_BYTES]).rstrip(b"=").decode()

    def token(self, bucket: str, folder: str, now: float | None = None) -> str:
        """A token granting reads under ``bucket/folder`` (``folder`` ends with ``/`` or is ``""``)."""
        if folder and not folder.endswith("/"):
            raise ValueError("a folder ends with '/'")
        granted = f"{bucket}/{folder}"
        expires = int((now if now is not None else time.time()) + self.ttl)
        return f"{expires}.{len(granted)}.{self._mac(granted, expires)}"

    def path(self, bucket: str, key: str, now: float | None = None) -> str:
        """The API path reading ``key`` through a link granting its folder."""
        return f"{SIGNED_PREFIX}{self.token(bucket, folder_of(key), now)}/{bucket}/{quote(key, safe='/')}"

    def url(self, bucket: str, key: str, now: float | None = None) -> str:
        """:meth:`path` made absolute with API_PUBLIC_URL, else the current request's base URL."""
        base = self.public_url or request_base_url()
        return f"{base or ''}{self.path(bucket, key, now)}"

    def link(self, bucket: str, key: str, public_s3: S3Client) -> str:
        """Where a client reads ``key``: a signed folder link for a manifest (its relative links must
        work too), a presigned S3 URL for anything else."""
        if is_manifest(key):
            return self.url(bucket, key)
        return get_presigned_url(key, bucket, client=public_s3)

    def check(self, token: str, bucket: str, key: str, now: float | None = None) -> None:
        """Raise :class:`LinkRefused` unless ``token`` grants reading ``bucket/key`` now."""
        match = _TOKEN.fullmatch(token)
        if match is None:
            raise LinkRefused("malformed media link token")
        expires, length, mac = int(match[1]), int(match[2]), match[3]
        target = f"{bucket}/{key}"
        granted = target[:length]
        if (
            length > len(target)
            or not granted.endswith("/")
            or not hmac.compare_digest(mac.encode(), self._mac(granted, expires).encode())
        ):
            raise LinkRefused(
                f"this link does not grant {target!r}: its token is forged or signed for another folder"
            )
        if expires < (now if now is not None else time.time()):
            raise LinkRefused("this media link has expired: ask the API for the job or the link again")


# --- playlists served under a signed link: their segments straight from S3 --------------------------
# A media playlist names its segments (and its init segment, #EXT-X-MAP) relatively. Resolved against the
# signed link, each would be a request to the API answered by a 307 to S3: two hops per segment, and
# FFmpeg warns "Cannot reuse HTTP connection for different host" on every one. The API writes them as
# presigned S3 URLs instead (one hop) when it redirects segments at all (not with API_MEDIA_PROXY).
# Left alone: playlists (a master's variants are served here too), keys (#EXT-X-KEY, #EXT-X-SESSION-KEY:
# served only to a playback token), absolute URIs, and anything outside the playlist's own folder.
_URI_ATTR = re.compile(r'URI="([^"]*)"')
MAX_PRESIGN_SECONDS = 7 * 24 * 3600  # the longest a SigV4 presigned URL may live


def link_expires(token: str) -> int:
    """When a (checked) token expires, as a Unix time: presigned URLs written into a playlist served
    under it live as long as the link, so a player reading a long VOD playlist once keeps working."""
    return int(token.partition(".")[0])


def presign_seconds(expires: int, now: float | None = None) -> int:
    left = expires - int(now if now is not None else time.time())
    return max(1, min(left, MAX_PRESIGN_SECONDS))


def segment_key(playlist_key: str, uri: str) -> str | None:
    """The key a relative ``uri`` in the playlist ``playlist_key`` names, if it is a file under the
    playlist's own folder that is not itself a manifest; else None (the URI is left as written)."""
    if not uri or "?" in uri or "#" in uri or ":" in uri.split("/", 1)[0] or uri.startswith("/"):
        return None  # absolute (scheme:, //host, /path), or with a query or fragment
    folder = folder_of(playlist_key)
    key = posixpath.normpath(folder + unquote(uri))
    if not key.startswith(folder) or key == ".." or key.startswith("../") or is_manifest(key):
        return None
    return key


def rewrite_playlist(text: str, playlist_key: str, presign: Callable[[str], str | None]) -> str:
    """``text`` (an HLS playlist) with each segment URI and #EXT-X-MAP URI under its folder replaced by
    ``presign(key)`` (None: left as written). Lines are otherwise kept byte for byte."""

    def swap(uri: str) -> str:
        key = segment_key(playlist_key, uri)
        url = presign(key) if key is not None else None
        return url if url is not None else uri

    out = []
    for line in text.split("\n"):
        bare = line.rstrip("\r")
        if not bare.strip():
            out.append(line)
        elif bare.startswith("#"):
            if bare.startswith("#EXT-X-MAP:"):
                line = _URI_ATTR.sub(lambda m: f'URI="{swap(m[1])}"', line)
            out.append(line)  # other tags (keys, variants, media renditions) as written
        else:
            end = line[len(bare) :]
            out.append(swap(bare.strip()) + end)
    return "\n".join(out)
