"""Which rungs of a preset's ladder a source gets: shared by a package's plan and the renditions' commands."""

from __future__ import annotations

from mpr_common.events import MediaInfo
from mpr_common.presets import Preset, Rung


def ladder_rungs(preset: Preset, info: MediaInfo) -> tuple[Rung, ...]:
    """The rungs a source gets: those not taller than the source (never upscale); a source shorter than
    every rung gets the lowest ones, at its own height (the scale filter never upscales). No video stream
    or no known height: none."""
    if info.video_codec is None or not info.height or not preset.ladder:
        return ()
    fitting = tuple(r for r in preset.ladder if r.height <= info.height)
    if not fitting:
        lowest = min(r.height for r in preset.ladder)
        fitting = tuple(r for r in preset.ladder if r.height == lowest)
    return fitting
