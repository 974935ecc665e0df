"""What an encrypted package (``"encryption": "aes-128"`` or ``"cenc"``) adds to its chord: its content key, made once
when it is planned (create-if-absent in ``mpr-content-keys``: a redelivered package, or two transcoders
planning it at once, keep the first key; its children read it to encrypt), and the key tags of the rung
playlists the chord stitches from chunks (the renditions it does not stitch key their own playlists as
they upload them: ``rendition.encryption``).

An AES-128 package has no DASH manifest: DASH has no full-segment encryption scheme (its protection is
CENC, sample encryption inside the fMP4 boxes, a different format of segment), so an MPD over these
segments would list media no DASH player can decrypt. The package's ``output_keys`` leave it out.

A cenc package's manifests name its KID (stored beside its key) and its licence (``protection``): the
rung playlists stitched here, the master playlist and the MPD alike."""

from __future__ import annotations

from mpr_common.content_keys import CENC, ContentKeys, KeyUnreadable, key_uri
from mpr_common.events import Rendition
from mpr_common.jobs import JobRequestError

from ..rendition.chunks import media_playlist
from ..rendition.encryption import keyed_playlist
from .children import PackagePlan
from .manifests import dash_mpd, hls_master
from .protection import cenc_master, cenc_mpd, cenc_playlist


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


async def package_kid(keys: ContentKeys | None, plan: PackagePlan) -> bytes | None:
    """A cenc package's KID (from its key's entry); None for any other package."""
    if plan.package.encryption != CENC:
        return None
    try:
        record = None if keys is None else await keys.record(plan.package.job_id)
    except KeyUnreadable as exc:
        raise JobRequestError(str(exc)) from None
    kid = None if record is None else record.kid_bytes()
    if kid is None:
        raise JobRequestError(f"the cenc package {plan.package.job_id} has no key ID")
    return kid


def rung_playlist(plan: PackagePlan, rung: Rendition, *, ended: bool, kid: bytes | None = None) -> str:
    """A stitched rung's media playlist, with its key tags when the package is encrypted."""
    text = media_playlist(rung, ended=ended)
    if plan.package.encryption is None:
        return text
    if kid is not None:
        return cenc_playlist(text, kid)
    return keyed_playlist(text, key_uri(plan.package.job_id))


def master_playlist(plan: PackagePlan, renditions: list[Rendition], kid: bytes | None) -> str:
    text = hls_master(renditions)
    return text if kid is None else cenc_master(text, kid, plan.package.job_id)


def package_mpd(plan: PackagePlan, renditions: list[Rendition], kid: bytes | None) -> str | None:
    """The package's MPD; None for an aes-128 package (no DASH scheme encrypts whole segments)."""
    if kid is not None:
        return cenc_mpd(dash_mpd(renditions), kid, plan.package.job_id)
    return dash_mpd(renditions) if plan.package.encryption is None else None
