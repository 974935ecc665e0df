"""Per-title ladders, the pure part: the quality target a package may ask for, where its samples are
taken, and, from constant-quality probe encodes of those samples, each rung's CRF and rate caps and the
rungs kept. The transcoder runs the probes (``mpr_transcoder.kinds.package.analysis``); everything it
decides with their results is here, unit-tested.

- **Target.** ``{"psnr": dB}``, ``{"ssim": x}`` or ``{"vmaf": x}`` (VMAF only where FFmpeg has libvmaf),
  each rung's mean over its frames at its own resolution; :data:`DEFAULT_TARGET` is 40 dB PSNR (about
  where compression artefacts stop being visible on most content at a normal viewing distance).
- **Curve.** A rung's probes give (CRF, rate, quality) points. Quality falls and rate falls as CRF rises;
  between probes both are interpolated linearly in CRF, the rate in its logarithm (x264's rate about
  halves every 6 CRF). For PSNR, the curve goes on below the lowest probe down to :data:`MIN_CRF`
  (quality on the two lowest probes' line, rate :data:`RATE_STEEPER` times as steep, erring towards
  more rate), so content that misses the target at the lowest probe CRF can still spend up to its
  ceiling; nothing is extrapolated above the highest probe, nor for SSIM (it saturates towards 1, a line
  would overshoot).
- **Choice.** The highest CRF (fewest bytes) whose predicted quality meets the target, within the rung's
  rate ceiling (:data:`CEILING_FACTOR` times the fixed rung's predicted rate, its CRF's or its cap when
  that binds: content that misses the target at any affordable rate gets at most that many times the
  fixed ladder's bytes, whether the fixed rung sits at its cap or below it); when no CRF meets it, the
  lowest CRF the ceiling allows. The rate caps (VBV) follow the predicted rate with :data:`HEADROOM` (a scene harder than the
  samples still gets its rate, and the cap never undoes the choice).
- **Top rung.** Never worse than the fixed ladder's on the same source: where the fixed rung's
  predicted quality (its CRF, capped at its max rate) is below the target, the top rung's CRF is at most
  the one that predicts the fixed rung's quality.
- **Hull.** From the top down, a rung is dropped when the next kept rung above it needs less than
  :data:`MIN_STEP` times its rate: that rung gives more pixels for about the same bits, so this one adds
  no quality per bit. The top rung and the lowest rung (the bandwidth floor) are always kept."""

from __future__ import annotations

import bisect
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import get_args

import msgspec

from .events import LadderKind, ProbePoint, QualityTarget, RungChoice
from .request_errors import JobRequestError

LADDERS: tuple[str, ...] = get_args(LadderKind)
PER_TITLE = "per-title"
DEFAULT_TARGET = QualityTarget(psnr=40.0)
# What a target may ask: a value outside is no useful quality (or one no encoder reaches).
TARGET_BOUNDS: dict[str, tuple[float, float]] = {
    "psnr": (25.0, 60.0),
    "ssim": (0.8, 0.999),
    "vmaf": (20.0, 99.0),
}
# Measured by x264 in the probe encodes; VMAF needs libvmaf (a second pass).
ENCODER_METRICS = ("psnr", "ssim")
# The probes' CRFs: wide enough that a slide deck and a noise-filled match both land inside.
PROBE_CRFS = (18, 29, 40)
# The lowest CRF a rung may get, below the lowest probe. Measured at 360p, x264 veryfast, 10 s: on a
# mandelbrot zoom the line through CRF 18 and 29 predicted CRF 14 at 45.97 dB (encoded: 46.39) and 12
# at 47.35 dB (47.96); with film-grain-like noise over it, CRF 14 at 41.17 dB (41.27). Quality on the
# line errs low. The rate does not follow one line: from CRF 18 down it grew 0.7x as fast per CRF as
# between 18 and 29 on the zoom, 1.9x as fast on the grain (grain costs ever more bits as it is kept).
# Hence RATE_STEEPER: a predicted rate past the ceiling only spends less, one below it more than promised.
MIN_CRF = 12
RATE_STEEPER = 2.0
EXTRAPOLATED = ("psnr",)  # the metrics whose curve goes on below the lowest probe
CEILING_FACTOR = 3.0
HEADROOM = 1.6  # max_rate over the predicted mean rate
BUF_FACTOR = 2.0  # buf_size over max_rate, as the fixed ladder
MIN_RATE_KBPS = 100
MIN_STEP = 1.5  # adjacent kept rungs at least this rate ratio apart (an ABR step worth switching to)
# 3 samples of 1 s: each rung's probes encode 3 x 3 s of its picture, which keeps the analysis a small
# share of a package (docs/benchmarks.md, per_title)
SAMPLES = 3
SAMPLE_SECONDS = 1.0


def check_target(target: QualityTarget, vmaf_available: bool) -> QualityTarget:
    """``target`` if it names exactly one metric within its bounds; raises :class:`JobRequestError`
    (field ``quality_target``) otherwise, and for VMAF when FFmpeg has no libvmaf."""
    named = [(m, v) for m, v in msgspec.structs.asdict(target).items() if v is not None]
    if len(named) != 1:
        raise JobRequestError(
            'quality_target names exactly one of psnr, ssim, vmaf (e.g. {"psnr": 40})', field="quality_target"
        )
    metric, value = named[0]
    lo, hi = TARGET_BOUNDS[metric]
    if not (isinstance(value, (int, float)) and math.isfinite(value) and lo <= value <= hi):
        raise JobRequestError(
            f"quality_target {metric} must be within {lo:g}..{hi:g}", field="quality_target"
        )
    if metric == "vmaf" and not vmaf_available:
        raise JobRequestError(
            "quality_target vmaf needs an FFmpeg with libvmaf, which this one has not: use psnr or ssim",
            field="quality_target",
        )
    if metric not in ENCODER_METRICS:
        raise JobRequestError(
            f"quality_target {metric} is not measured by per-title analysis: use psnr or ssim",
            field="quality_target",
        )
    return target


def target_of(target: QualityTarget | None) -> tuple[str, float]:
    """(metric, value) of a checked target; the default when None."""
    t = target or DEFAULT_TARGET
    for metric, value in msgspec.structs.asdict(t).items():
        if value is not None:
            return metric, float(value)
    raise ValueError("empty quality target")


def sample_starts(
    duration: float, scenes: Sequence[float], count: int = SAMPLES, length: float = SAMPLE_SECONDS
) -> tuple[list[float], str]:
    """Where ``count`` samples of ``length`` seconds start in a source of ``duration`` seconds, and how
    they were spread: at the scene changes nearest evenly spread moments (``"scenes"``) when the source
    has at least ``count`` of them, else evenly (``"even"``). Each sample lies within the source; a
    source shorter than ``count`` samples gets fewer (at least one, from 0)."""
    if duration <= length:
        return [0.0], "even"
    room = duration - length
    count = max(1, min(count, int(room // length)))  # evenly spread samples never overlap
    even = [round(room * (i + 0.5) / count, 3) for i in range(count)]
    cuts = sorted({round(c, 3) for c in scenes if 0.0 <= c <= room})
    if len(cuts) < count:
        return even, "even"
    picked: list[float] = []
    for moment in even:
        free = [c for c in cuts if all(abs(c - p) >= length for p in picked)]
        if not free:
            return even, "even"
        picked.append(min(free, key=lambda c: abs(c - moment)))
    return sorted(picked), "scenes"


def kbps(rate: str) -> float:
    """A rate as presets write it ("5000k", "2M", "800000") in kb/s."""
    r = rate.strip().lower()
    scale = {"k": 1.0, "m": 1000.0}.get(r[-1:], 0.001)
    return float(r.rstrip("km")) * scale


def rate(kb: float) -> str:
    return f"{max(MIN_RATE_KBPS, round(kb))}k"


def quality(point: ProbePoint, metric: str) -> float | None:
    value = getattr(point, metric, None)
    return None if value is None else float(value)


@dataclass(frozen=True, slots=True)
class Curve:
    """A rung's probes as monotone curves over CRF: quality never rises and rate never rises with CRF
    (a noisy probe that does is held at its neighbour's value). From ``low`` (at most the lowest probe's
    CRF) to the highest probe's; below the lowest probe, the line of the two lowest."""

    crfs: list[int]
    qualities: list[float]
    rates: list[float]  # kb/s
    low: int  # the lowest CRF the curve predicts

    @property
    def high(self) -> int:
        return self.crfs[-1]

    @classmethod
    def of(cls, points: Sequence[ProbePoint], metric: str) -> Curve:
        usable = sorted(
            ((p.crf, q, max(p.kbps, 1e-3)) for p in points if (q := quality(p, metric)) is not None),
            key=lambda t: t[0],
        )
        if not usable:
            raise ValueError(f"no probe measured {metric}")
        crfs: list[int] = []
        qs: list[float] = []
        rs: list[float] = []
        for crf, q, r in usable:
            if crfs and crf == crfs[-1]:
                continue
            crfs.append(crf)
            qs.append(min(q, qs[-1]) if qs else q)
            rs.append(min(r, rs[-1]) if rs else r)
        low = min(MIN_CRF, crfs[0]) if metric in EXTRAPOLATED and len(crfs) > 1 else crfs[0]
        return cls(crfs, qs, rs, low)

    def _at(self, crf: float, values: list[float], log: bool = False, steeper: float = 1.0) -> float:
        crf = max(crf, self.low)
        if crf >= self.crfs[-1]:
            return values[-1]
        if crf < self.crfs[0] and len(self.crfs) == 1:
            return values[0]
        i = max(0, bisect.bisect_right(self.crfs, crf) - 1)  # below the lowest probe: its segment's line
        c0, c1 = self.crfs[i], self.crfs[i + 1]
        f = (crf - c0) / (c1 - c0)
        if f < 0:
            f *= steeper
        a, b = values[i], values[i + 1]
        if log:
            return math.exp(math.log(a) + f * (math.log(b) - math.log(a)))
        return a + f * (b - a)

    def quality(self, crf: float) -> float:
        return self._at(crf, self.qualities)

    def kbps(self, crf: float) -> float:
        return self._at(crf, self.rates, log=True, steeper=RATE_STEEPER)

    def crf_for_quality(self, target: float) -> int | None:
        """The highest whole CRF of the curve whose predicted quality meets ``target``; None when none
        does."""
        best = None
        for crf in range(self.low, self.high + 1):
            if self.quality(crf) >= target - 1e-9:
                best = crf
        return best

    def crf_for_rate(self, ceiling: float) -> int:
        """The lowest whole CRF of the curve whose predicted rate is at most ``ceiling`` (the highest
        probe's CRF when none is)."""
        for crf in range(self.low, self.high + 1):
            if self.kbps(crf) <= ceiling + 1e-9:
                return crf
        return self.high


@dataclass(frozen=True, slots=True)
class RungPlan:
    """A rung of the preset as the chooser needs it: its name, height and the fixed ladder's settings."""

    name: str
    height: int
    crf: int
    max_rate: str


def fixed_rate(curve: Curve, rung: RungPlan) -> float:
    """The fixed rung's predicted mean rate (kb/s): its CRF's on this curve, held to its cap."""
    return min(curve.kbps(rung.crf), kbps(rung.max_rate))


def choose_rung(
    rung: RungPlan, points: Sequence[ProbePoint], metric: str, target: float, *, top: bool = False
) -> RungChoice:
    """The CRF and caps of one rung from its probes (see the module's docstring); ``top``: the ladder's
    highest rung (never worse than the fixed one's)."""
    curve = Curve.of(points, metric)
    fixed_cap = kbps(rung.max_rate)
    ceiling = CEILING_FACTOR * fixed_rate(curve, rung)
    floor_crf = curve.crf_for_rate(ceiling)  # no lower CRF: its rate is past the ceiling
    meets = curve.crf_for_quality(target)
    if meets is not None and meets >= floor_crf:
        crf, why = meets, f"highest CRF predicted to reach {metric} {target:g}"
    elif meets is not None:
        crf, why = (
            floor_crf,
            f"{metric} {target:g} needs more than {CEILING_FACTOR:g}x the fixed rate: the ceiling's CRF",
        )
    else:
        crf, why = (
            floor_crf,
            f"no probe reaches {metric} {target:g}: the lowest CRF within {CEILING_FACTOR:g}x the fixed rate",
        )
    if top:
        # the fixed rung: its CRF, or the CRF its cap holds it to when that rate is below its CRF's
        fixed_crf = max(rung.crf, curve.crf_for_rate(fixed_cap))
        fixed_q = curve.quality(fixed_crf)
        if fixed_q < target and curve.quality(crf) < fixed_q:
            crf, why = min(crf, fixed_crf), "the fixed ladder's top rung would do better: its CRF"
    predicted = curve.kbps(crf)
    max_rate = max(predicted * HEADROOM, MIN_RATE_KBPS)
    return RungChoice(
        name=rung.name,
        height=rung.height,
        kept=True,
        reason=why,
        crf=crf,
        max_rate=rate(max_rate),
        buf_size=rate(max_rate * BUF_FACTOR),
        predicted_kbps=round(predicted, 1),
        predicted_quality=round(curve.quality(crf), 4),
        probes=list(points),
    )


def convex_hull(choices: Sequence[RungChoice]) -> list[RungChoice]:
    """``choices`` (any order) with the rungs that add no quality per bit marked dropped (see the
    module's docstring), highest rung first. The top and the lowest rung are always kept."""
    ordered = sorted(choices, key=lambda c: -c.height)
    out: list[RungChoice] = []
    above: RungChoice | None = None
    for i, c in enumerate(ordered):
        lowest = i == len(ordered) - 1
        mine = c.predicted_kbps or 0.0
        theirs = above.predicted_kbps or 0.0 if above is not None else 0.0
        if above is not None and not lowest and theirs < MIN_STEP * mine:
            out.append(
                msgspec.structs.replace(
                    c,
                    kept=False,
                    reason=(
                        f"dropped: {above.name} needs {theirs / max(mine, 1e-9):.2f}x its rate "
                        f"(< {MIN_STEP:g}x) for more pixels"
                    ),
                )
            )
            continue
        out.append(c)
        above = c
    return out


def choose_ladder(
    rungs: Sequence[RungPlan], probes: Mapping[str, Sequence[ProbePoint]], metric: str, target: float
) -> list[RungChoice]:
    """Every rung's choice, the hull applied, highest rung first."""
    top = max(r.height for r in rungs)
    return convex_hull([choose_rung(r, probes[r.name], metric, target, top=r.height == top) for r in rungs])
