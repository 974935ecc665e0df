"""The assets domain's request and response bodies."""

from __future__ import annotations

import msgspec

from mpr_common.events import AssetView, RefusedObject

from ..http.fields import KeyPrefix, Page


class ScanBody(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    prefix: KeyPrefix = ""


class ScanResult(msgspec.Struct, kw_only=True):
    """The seed's answer (found, registered, skipped, files), plus what the scan refused and why and
    how many registered assets it no longer found."""

    found: int
    registered: int
    skipped: int
    files: list[str]
    refused: list[RefusedObject] = msgspec.field(default_factory=list)
    removed: int = 0
    scan_id: str = ""


class AssetPage(Page):
    items: list[AssetView]
