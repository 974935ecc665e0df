"""Never worse than the source: whether a transcode or trim keeps its output (``keep_if``, ``min_psnr``,
``min_ssim``), defined once for the API (400 on bad options) and the transcoders (the verdict). Pure
functions, unit-tested.

What is compared (docs/outputs.md, "Keeping an output only when it is smaller or good enough"):

- **Size**: bytes per second of media. The source's is its object's size over its probed duration, the
  output's its file's size over the seconds of media it holds (a trim's: its range). Both count the whole
  file: every stream kept (the sound too) and the container. A trim is compared with the source's
  average over its whole length. An output at exactly the source's rate is kept.
- **Quality**: the output's mean luma PSNR (dB) and SSIM against the source at the output's size, as its
  encoder measured them (:mod:`mpr_common.quality`: H.264 outputs only). A floor is met at or above it.

``keep_if``: ``"always"`` (the default: no size test), ``"smaller"`` (size), ``"better"`` (size, and the
floors given, else :data:`BETTER_MIN_PSNR`). ``min_psnr``/``min_ssim`` apply whatever ``keep_if`` is.
A figure the verdict needs and that is not known (a source without a duration, a quality not measured)
does not keep the output: it could not be shown to be no worse."""

from __future__ import annotations

import math

from .events import KEEP_IFS, JobRequested, KeepVerdict, NotKeptReason, Quality
from .presets import Preset
from .quality import PSNR_CAP
from .request_errors import JobRequestError

KEEP_IF_KINDS = ("transcode", "trim")
# "better" without a floor of its own: a mean luma PSNR this high is hard to tell from the source.
BETTER_MIN_PSNR = 40.0
MIN_SSIM_MAX = 1.0
# Encoders whose outputs carry a measured quality (mpr_transcoder.quality.ENCODER)
MEASURED_CODECS = ("libx264",)
# Presets that copy the source's frames (a stream copy; the smart cut's whole GOPs): nothing to judge.
_COPYING_CODECS = (None, "copy", "smart")
_PACKAGES = (
    "a package does not take keep_if, min_psnr or min_ssim (yet): its rungs are made for players to "
    "switch between, and dropping one from a ladder already playable is not built; see docs/outputs.md"
)


def keep_options(job: JobRequested) -> list[str]:
    """The keep options a request sets, in the order their errors are reported."""
    return [n for n in ("keep_if", "min_psnr", "min_ssim") if getattr(job, n) is not None]


def check_keep(job: JobRequested, preset: Preset) -> None:
    """Refuse keep options a job cannot honour, naming the field: another kind, a preset that copies,
    a quality floor on an output whose quality is not measured, values out of range."""
    given = keep_options(job)
    if not given:
        return
    first = given[0]
    if job.kind == "package":
        raise JobRequestError(_PACKAGES, field=first)
    if job.kind not in KEEP_IF_KINDS:
        raise JobRequestError(f"{first} is an option of {' and '.join(KEEP_IF_KINDS)} jobs", field=first)
    if job.keep_if is not None and job.keep_if not in KEEP_IFS:
        raise JobRequestError(f"keep_if must be one of {', '.join(KEEP_IFS)}", field="keep_if")
    if preset.video_codec in _COPYING_CODECS:
        raise JobRequestError(
            f"{first} judges a re-encode: preset {preset.name!r} copies the source's frames", field=first
        )
    _check_floor("min_psnr", job.min_psnr, PSNR_CAP, "dB")
    _check_floor("min_ssim", job.min_ssim, MIN_SSIM_MAX, "")
    floors = [n for n in ("min_psnr", "min_ssim") if getattr(job, n) is not None]
    if job.keep_if == "better" and not floors:
        floors = ["keep_if"]
    if floors and preset.video_codec not in MEASURED_CODECS:
        raise JobRequestError(
            f"{floors[0]} needs the output's measured quality, which only H.264 outputs carry: preset "
            f"{preset.name!r} encodes {preset.video_codec}",
            field=floors[0],
        )


def _check_floor(name: str, value: float | None, top: float, unit: str) -> None:
    if value is None:
        return
    if isinstance(value, bool) or not math.isfinite(value) or not 0 < value <= top:
        bound = f"{top:g} {unit}".rstrip()
        raise JobRequestError(f"{name} must be a number above 0 and at most {bound}", field=name)


def rate(size: int, seconds: float | None) -> float | None:
    """Bytes per second of media; None when the seconds are not known (or none)."""
    if seconds is None or not math.isfinite(seconds) or seconds <= 0 or size < 0:
        return None
    return size / seconds


def kbps_text(bytes_per_second: float) -> str:
    """A rate as people read it: kilobytes (1000 bytes) a second, no decimals above 10."""
    k = bytes_per_second / 1000
    return f"{k:.0f} kB/s" if k >= 10 else f"{k:.1f} kB/s"


def judged(job: JobRequested) -> bool:
    """Whether a job's output is judged at all: ``keep_if`` other than ``"always"``, or a floor."""
    return job.keep_if not in (None, "always") or job.min_psnr is not None or job.min_ssim is not None


def decide(
    job: JobRequested,
    *,
    source_size: int,
    source_seconds: float | None,
    output_size: int,
    output_seconds: float | None,
    quality: Quality | None,
) -> KeepVerdict:
    """The verdict on one output of ``job`` (normalised). The first test it fails is its ``reason``: the
    size, then the PSNR floor, then the SSIM floor; every figure known is reported either way."""
    keep_if = job.keep_if or "always"
    min_psnr, min_ssim = job.min_psnr, job.min_ssim
    if keep_if == "better" and min_psnr is None and min_ssim is None:
        min_psnr = BETTER_MIN_PSNR
    source_rate = rate(source_size, source_seconds) if source_size > 0 else None
    output_rate = rate(output_size, output_seconds)
    psnr = quality.psnr.mean if quality is not None and quality.psnr is not None else None
    ssim = quality.ssim.mean if quality is not None and quality.ssim is not None else None
    said: list[str] = []
    failed: list[tuple[NotKeptReason, str]] = []
    if keep_if != "always":
        if source_rate is None or output_rate is None:
            failed.append(("not_measured", "the source's bytes per second are not known (no duration)"))
        elif output_rate > source_rate:
            failed.append(("larger", f"output {kbps_text(output_rate)} > source {kbps_text(source_rate)}"))
        else:
            said.append(f"output {kbps_text(output_rate)} ≤ source {kbps_text(source_rate)}")
    floors: list[tuple[str, float | None, float | None, str, NotKeptReason]] = [
        ("PSNR", psnr, min_psnr, "{:.2f} dB", "below_min_psnr"),
        ("SSIM", ssim, min_ssim, "{:.4f}", "below_min_ssim"),
    ]
    for label, value, floor, fmt, below in floors:
        if floor is None:
            continue
        if value is None:
            failed.append(("not_measured", f"{label} was not measured"))
        elif value < floor:
            failed.append((below, f"{label} {fmt.format(value)} < floor {fmt.format(floor)}"))
        else:
            said.append(f"{label} {fmt.format(value)} ≥ floor {fmt.format(floor)}")
    return KeepVerdict(
        keep_if=keep_if,
        source_key=job.source_key,
        source_bucket=job.source_bucket,
        kept=not failed,
        reason=failed[0][0] if failed else None,
        detail="; ".join(d for _, d in failed) if failed else "; ".join(said),
        source_rate=None if source_rate is None else round(source_rate, 1),
        output_rate=None if output_rate is None else round(output_rate, 1),
        output_size=output_size,
        psnr=psnr,
        ssim=ssim,
        min_psnr=min_psnr,
        min_ssim=min_ssim,
    )


def not_kept_line(verdict: KeepVerdict) -> str:
    """What a person is told of a verdict: "Not kept: output 412 kB/s > source 300 kB/s"."""
    return ("Kept: " if verdict.kept else "Not kept: ") + (verdict.detail or verdict.keep_if)
