"""Bounds on one job (one ``TRANSCODER_*`` setting each), and the check of a source's probe against them
before FFmpeg runs."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from mpr_common.events import MediaInfo

from .job_errors import JobError
from .settings import SETTING_FIELDS, TranscoderSettings, setting


def _default(name: str) -> Any:
    return SETTING_FIELDS[name].default


@dataclass(frozen=True, slots=True)
class Limits:
    """Bounds on one job: each is the :class:`TranscoderSettings` field of the same name (its default,
    its ``TRANSCODER_*`` variable)."""

    job_timeout: float = _default("job_timeout")
    probe_timeout: float = _default("probe_timeout")
    max_output_bytes: int = _default("max_output_bytes")
    disk_reserve_bytes: int = _default("disk_reserve_bytes")
    max_width: int = _default("max_width")
    max_height: int = _default("max_height")
    max_pixels: int = _default("max_pixels")
    max_source_duration: float = _default("max_source_duration")
    stall_timeout: float = _default("stall_timeout")
    ffmpeg_max_memory: int = _default("ffmpeg_max_memory")
    ffmpeg_threads: int = _default("ffmpeg_threads")

    @classmethod
    def from_settings(cls, settings: TranscoderSettings) -> Limits:
        return cls(**{f.name: getattr(settings, f.name) for f in dataclasses.fields(cls)})


def check_source(info: MediaInfo, limits: Limits) -> None:
    """Refuse, before FFmpeg runs, a source whose probe shows more than the limits allow."""
    w, h = info.width or 0, info.height or 0
    over = [
        setting(name, limit)
        for name, value, limit in (
            ("max_width", w, limits.max_width),
            ("max_height", h, limits.max_height),
            ("max_pixels", w * h, limits.max_pixels),
        )
        if limit and value > limit
    ]
    if over:
        raise JobError(f"source picture is {w}x{h} ({w * h} pixels), above {', '.join(over)}", "source")
    d, dmax = info.duration, limits.max_source_duration
    if d is not None and dmax and d > dmax:
        raise JobError(f"source lasts {d:.1f}s, above {setting('max_source_duration', dmax)}s", "source")
