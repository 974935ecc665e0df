"""What an encrypted package (``"encryption": "aes-128"``) adds to its chord: its content key, made once
when it is planned (create-if-absent in ``mpr-content-keys``: a redelivered package, or two transcoders
planning it at once, keep the first key; its children read it to encrypt), and the key tags of the rung
playlists the chord stitches from chunks (the renditions it does not stitch key their own playlists as
they upload them: ``rendition.encryption``).

An AES-128 package has no DASH manifest: DASH has no full-segment encryption scheme (its protection is
CENC, sample encryption inside the fMP4 boxes, a different format of segment), so an MPD over these
segments would list media no DASH player can decrypt. The package's ``output_keys`` leave it out."""

from __future__ import annotations

from mpr_common.content_keys import ContentKeys, KeyUnreadable, key_uri
from mpr_common.events import Rendition
from mpr_common.jobs import JobRequestError

from ..rendition.chunks import media_playlist
from ..rendition.encryption import keyed_playlist
from .children import PackagePlan


async def make_content_key(keys: ContentKeys | None, plan: PackagePlan, bucket: str) -> None:
    """The package's key, when it is encrypted: made now unless it has one (``bucket``: the package's
    output bucket, which with its folder is where its playlists may name the key). Raises
    :class:`JobRequestError` when this transcoder holds no key-encryption secret."""
    package = plan.package
    if package.encryption is None:
        return
    if keys is None:
        raise JobRequestError(
            f"encryption {package.encryption!r}: the transcoders have no MPR_KEY_SECRET to keep keys with"
        )
    try:
        await keys.create(package.job_id, package.encryption, bucket, plan.folder)
    except KeyUnreadable as exc:
        raise JobRequestError(str(exc)) from None


def rung_playlist(plan: PackagePlan, rung: Rendition, *, ended: bool) -> str:
    """A stitched rung's media playlist, with its key tags when the package is encrypted."""
    text = media_playlist(rung, ended=ended)
    if plan.package.encryption is None:
        return text
    return keyed_playlist(text, key_uri(plan.package.job_id))
