"""What a cenc package's manifests say of its protection (the segments: ``rendition.cenc``). Pure text.

- **Media playlists**: one ``#EXT-X-KEY:METHOD=SAMPLE-AES-CTR,KEYFORMAT="org.w3.clearkey"`` before the
  ``#EXT-X-MAP`` (it applies to the init segment and every segment after it: RFC 8216bis 4.4.4.4), its
  URI a ``data:`` URI of the KID, which is where hls.js reads a ClearKey key's ID from. The key itself
  comes from the licence, never from the playlist.
- **Master playlist**: the same key as ``#EXT-X-SESSION-KEY`` (players may open the CDM's session before
  any media playlist), and the licence URL as ``#EXT-X-SESSION-DATA`` (``LICENSE_DATA_ID``): HLS has no
  tag for a licence server; the console's player reads it from there.
- **MPD**: in every audio and video adaptation set, the ``mp4protection`` descriptor (``cenc``, the
  default KID) and the ClearKey systems' (DASH-IF's ``e2719d58-…`` and W3C's common ``1077efec-…``),
  each with the licence URL in ``dashif:Laurl``, the element dash.js reads.

The licence URL is written without a token (``mpr_common.content_keys.license_uri``): the API adds a
playback token when it serves the manifests under the package's signed link. Subtitle sets stay
unprotected."""

from __future__ import annotations

import base64
import re
import uuid

from mpr_common.content_keys import LICENSE_DATA_ID, license_uri

KEY_FORMAT = "org.w3.clearkey"
METHOD = "SAMPLE-AES-CTR"
MP4_PROTECTION = "urn:mpeg:dash:mp4protection:2011"
CENC_NS = "urn:mpeg:cenc:2013"
DASHIF_NS = "https://dashif.org/CPS"
CLEARKEY_SYSTEMS = (
    "urn:uuid:e2719d58-a985-b3c9-781a-b030af78d30e",  # DASH-IF ClearKey
    "urn:uuid:1077efec-c0b2-4d02-ace3-3c1e52e2fb4b",  # W3C common (the pssh in the init segments)
)
_ADAPTATION_SET = re.compile(r'^(\s*)<AdaptationSet [^>]*contentType="(?:video|audio)"[^>]*[^/]>$')


def kid_uuid(kid: bytes) -> str:
    return str(uuid.UUID(bytes=kid))


def _key_attributes(kid: bytes) -> str:
    data = base64.b64encode(kid).decode()
    return (
        f'METHOD={METHOD},KEYFORMAT="{KEY_FORMAT}",KEYFORMATVERSIONS="1",URI="data:text/plain;base64,{data}"'
    )


def cenc_playlist(text: str, kid: bytes) -> str:
    """A media playlist with the key tag before its init segment (key tags already there replaced)."""
    lines = [line for line in text.splitlines() if not line.startswith("#EXT-X-KEY:")]
    at = next((i for i, line in enumerate(lines) if line.startswith("#EXT-X-MAP:")), None)
    if at is None:
        raise ValueError("a media playlist of fMP4 segments names its init segment")
    lines.insert(at, "#EXT-X-KEY:" + _key_attributes(kid))
    return "\n".join(lines) + "\n"


def cenc_master(text: str, kid: bytes, package_id: str) -> str:
    """The master playlist with the session key and the licence URL, after its header tags."""
    lines = text.splitlines()
    at = next(
        (
            i
            for i, line in enumerate(lines)
            if not line.startswith(("#EXTM3U", "#EXT-X-VERSION", "#EXT-X-INDEPENDENT"))
        ),
        len(lines),
    )
    lines[at:at] = [
        "#EXT-X-SESSION-KEY:" + _key_attributes(kid),
        f'#EXT-X-SESSION-DATA:DATA-ID="{LICENSE_DATA_ID}",VALUE="{license_uri(package_id)}"',
    ]
    return "\n".join(lines) + "\n"


def cenc_mpd(text: str, kid: bytes, package_id: str) -> str:
    """The MPD (as ``manifests.dash_mpd`` writes it: one element a line) with the protection descriptors
    first in each audio and video adaptation set, where the schema puts them."""
    out: list[str] = []
    declared = False
    for line in text.splitlines():
        if not declared and line.startswith("<MPD "):
            line = line.replace("<MPD ", f'<MPD xmlns:cenc="{CENC_NS}" xmlns:dashif="{DASHIF_NS}" ', 1)
            declared = True
        out.append(line)
        match = _ADAPTATION_SET.match(line)
        if match is None:
            continue
        pad = match[1] + "  "
        out.append(
            f'{pad}<ContentProtection schemeIdUri="{MP4_PROTECTION}" value="cenc" '
            f'cenc:default_KID="{kid_uuid(kid)}" />'
        )
        for system in CLEARKEY_SYSTEMS:
            out += [
                f'{pad}<ContentProtection schemeIdUri="{system}" value="ClearKey1.0">',
                f"{pad}  <dashif:Laurl>{license_uri(package_id)}</dashif:Laurl>",
                f"{pad}</ContentProtection>",
            ]
    if not declared:
        raise ValueError("not an MPD")
    return "\n".join(out) + "\n"
