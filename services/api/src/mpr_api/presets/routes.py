from __future__ import annotations

import msgspec
from litestar import get

from mpr_common.presets import DEFAULT_PRESET, PRESETS


class PresetOut(msgspec.Struct, kw_only=True):
    name: str
    kinds: list[str]
    description: str
    extension: str
    default_for: list[str]


_PRESETS = [
    PresetOut(
        name=p.name,
        kinds=list(p.kinds),
        description=p.description,
        extension=p.extension,
        default_for=[k for k, v in DEFAULT_PRESET.items() if v == p.name],
    )
    for p in PRESETS.values()
]


@get("/api/presets", tags=["presets"], summary="Encoding presets a job may name")
async def list_presets() -> list[PresetOut]:
    return _PRESETS
