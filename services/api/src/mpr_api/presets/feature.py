"""Presets: ``GET /api/presets``, the encoding presets a job may name (defined in mpr_common.presets)."""

from __future__ import annotations

from ..feature import Feature
from .routes import list_presets

FEATURE = Feature("presets", routes=[list_presets])
