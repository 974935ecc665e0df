"""What the API and the transcoders agree on about an adaptive package: the keys of its manifests, which
the API claims for a package job and the transcoders write. The package's plan of child jobs is the
transcoders' own (``mpr_transcoder.kinds.package.children``)."""

from __future__ import annotations

import posixpath

from .events import JobRequested
from .presets import DASH_MANIFEST, MASTER_PLAYLIST


def manifest_keys(package: JobRequested) -> tuple[str, str]:
    """The keys a package writes its manifests to, in the folder of its output key (whatever that key's
    own name): its HLS master playlist and its DASH MPD. Whoever owns them owns the folder's package."""
    assert package.output_key is not None
    folder = posixpath.dirname(package.output_key)
    return posixpath.join(folder, MASTER_PLAYLIST), posixpath.join(folder, DASH_MANIFEST)
