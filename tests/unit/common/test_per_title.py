"""Per-title ladders, the pure part: curves over CRF, each rung's choice, the hull, samples, and the
job options that ask for one."""

from __future__ import annotations

import math

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mpr_common import per_title as pt
from mpr_common.events import JobRequested, ProbePoint, QualityTarget, RungChoice, RungSettings
from mpr_common.jobs import JobRequestError, normalize_job


def _points(qualities: list[float], rates: list[float]) -> list[ProbePoint]:
    return [
        ProbePoint(crf=c, kbps=r, psnr=q) for c, q, r in zip(pt.PROBE_CRFS, qualities, rates, strict=True)
    ]


RUNG = pt.RungPlan("720p", 720, 23, "3000k")
decreasing = st.lists(
    st.floats(20.0, 70.0, allow_nan=False), min_size=len(pt.PROBE_CRFS), max_size=len(pt.PROBE_CRFS)
).map(lambda v: sorted(v, reverse=True))
rates = st.lists(
    st.floats(10.0, 50_000.0, allow_nan=False), min_size=len(pt.PROBE_CRFS), max_size=len(pt.PROBE_CRFS)
).map(lambda v: sorted(v, reverse=True))


def test_curve_interpolates_quality_linearly_and_rate_geometrically() -> None:
    curve = pt.Curve.of(
        [ProbePoint(crf=20, kbps=4000, psnr=44), ProbePoint(crf=30, kbps=1000, psnr=38)], "psnr"
    )
    assert curve.quality(25) == pytest.approx(41.0)
    assert curve.kbps(25) == pytest.approx(2000.0)  # halfway in log: the geometric mean
    assert curve.quality(40) == 38 and curve.kbps(40) == 1000  # held above the highest probe
    assert curve.crf_for_quality(40) == 26  # 26 predicts 40.4, 27 predicts 39.8
    assert curve.crf_for_rate(2000) == 25


def test_psnr_goes_on_below_the_lowest_probe_down_to_the_lowest_crf_and_ssim_does_not() -> None:
    points = [
        ProbePoint(crf=20, kbps=4000, psnr=44, ssim=0.97),
        ProbePoint(crf=30, kbps=1000, psnr=38, ssim=0.9),
    ]
    psnr = pt.Curve.of(points, "psnr")
    assert psnr.low == pt.MIN_CRF
    assert psnr.quality(16) == pytest.approx(46.4)  # 0.6 dB a CRF, the two lowest probes' line
    # x4 per 10 CRF between the probes; below them RATE_STEEPER times as steep (more rate predicted)
    assert psnr.kbps(14) == pytest.approx(4000 * 4 ** (0.6 * pt.RATE_STEEPER))
    assert psnr.quality(pt.MIN_CRF - 4) == psnr.quality(pt.MIN_CRF)  # held below MIN_CRF
    assert psnr.crf_for_quality(46) == 16 and psnr.crf_for_quality(60) is None
    ssim = pt.Curve.of(points, "ssim")
    assert ssim.low == 20 and ssim.quality(14) == 0.97 and ssim.crf_for_quality(0.98) is None


def test_a_probe_that_scores_higher_at_a_higher_crf_is_held_to_its_neighbour() -> None:
    curve = pt.Curve.of(
        [ProbePoint(crf=18, kbps=900, psnr=45), ProbePoint(crf=29, kbps=1000, psnr=46)], "psnr"
    )
    assert curve.qualities == [45, 45] and curve.rates == [900, 900]


@given(decreasing, rates, st.floats(25.0, 60.0))
@settings(max_examples=300, deadline=None)
def test_the_chosen_crf_reaches_the_target_whenever_a_probe_within_the_ceiling_does(
    qualities: list[float], kbps: list[float], target: float
) -> None:
    points = _points(qualities, kbps)
    choice = pt.choose_rung(RUNG, points, "psnr", target)
    ceiling = pt.CEILING_FACTOR * pt.fixed_rate(pt.Curve.of(points, "psnr"), RUNG)
    assert choice.crf is not None and choice.predicted_quality is not None
    assert pt.MIN_CRF <= choice.crf <= pt.PROBE_CRFS[-1]
    if any(p.psnr is not None and p.psnr >= target and p.kbps <= ceiling for p in points):
        assert choice.predicted_quality >= target - 1e-3
    # the caps follow the predicted rate with headroom: the VBV cap never undoes the choice
    assert pt.kbps(choice.max_rate or "") >= min(pt.HEADROOM * (choice.predicted_kbps or 0), 1e9) - 1
    assert pt.kbps(choice.buf_size or "") >= pt.kbps(choice.max_rate or "")


@given(decreasing, rates, st.floats(25.0, 60.0))
@settings(max_examples=200, deadline=None)
def test_the_top_rung_is_never_predicted_worse_than_the_fixed_rung_where_that_misses_the_target(
    qualities: list[float], kbps: list[float], target: float
) -> None:
    top = pt.RungPlan("1080p", 1080, 23, "5000k")
    curve = pt.Curve.of(_points(qualities, kbps), "psnr")
    fixed_q = curve.quality(max(top.crf, curve.crf_for_rate(pt.kbps(top.max_rate))))
    choice = pt.choose_rung(top, _points(qualities, kbps), "psnr", target, top=True)
    assert choice.predicted_quality is not None
    if fixed_q < target:
        assert choice.predicted_quality >= round(fixed_q, 4) - 1e-6


def test_a_slide_deck_gets_a_high_crf_and_a_noisy_source_its_ceiling() -> None:
    slides = _points([60.0, 52.0, 44.5], [60.0, 35.0, 22.0])
    noise = _points([36.0, 30.0, 25.0], [40_000.0, 9_000.0, 2_500.0])
    easy = pt.choose_rung(RUNG, slides, "psnr", 40.0)
    hard = pt.choose_rung(RUNG, noise, "psnr", 40.0)
    assert easy.crf == pt.PROBE_CRFS[-1] and "reach" in easy.reason
    assert hard.predicted_kbps is not None and hard.predicted_kbps <= 9000.0 + 1e-6
    assert "no probe reaches" in hard.reason


@given(decreasing, rates, st.floats(25.0, 60.0))
@settings(max_examples=300, deadline=None)
def test_a_rung_gets_the_target_or_the_most_quality_its_ceiling_buys(
    qualities: list[float], kbps: list[float], target: float
) -> None:
    points = _points(qualities, kbps)
    curve = pt.Curve.of(points, "psnr")
    ceiling = pt.CEILING_FACTOR * pt.fixed_rate(curve, RUNG)
    choice = pt.choose_rung(RUNG, points, "psnr", target)
    assert (
        choice.crf is not None and choice.predicted_kbps is not None and choice.predicted_quality is not None
    )
    best = curve.crf_for_rate(ceiling)  # the lowest CRF the ceiling allows
    if curve.kbps(best) <= ceiling + 1e-6:
        assert choice.predicted_kbps <= ceiling * 1.001  # never past the ceiling when a CRF is within it
        assert choice.predicted_quality >= min(target, round(curve.quality(best), 4)) - 1e-3


def test_the_ceiling_is_three_times_the_fixed_rungs_own_rate_when_its_cap_does_not_bind() -> None:
    # The fixed CRF 23 predicts ~1100 kb/s, under its 3000k cap: 3x the cap (9000) would be ~8x its bytes.
    points = _points([34.0, 28.0, 24.0], [2_000.0, 600.0, 200.0])
    curve = pt.Curve.of(points, "psnr")
    assert pt.fixed_rate(curve, RUNG) == pytest.approx(curve.kbps(23)) and curve.kbps(23) < 3000
    choice = pt.choose_rung(RUNG, points, "psnr", 40.0)
    assert choice.predicted_kbps is not None
    assert choice.predicted_kbps <= pt.CEILING_FACTOR * curve.kbps(23) * 1.001
    assert choice.crf is not None and choice.crf < 18 and "no probe reaches" in choice.reason


def test_a_hard_source_that_misses_the_target_at_the_lowest_probe_spends_below_it() -> None:
    # The fixed 720p rung is held to its 3000k cap; CRF 18 predicts 39 dB at 5000 kb/s. Below 18 the
    # curve reaches 40 dB (CRF 16: 40.45 dB at ~7600 kb/s) within 3x the fixed rate.
    points = _points([39.0, 31.0, 26.0], [5_000.0, 1_600.0, 450.0])
    choice = pt.choose_rung(RUNG, points, "psnr", 40.0, top=True)
    assert choice.crf is not None and choice.crf < pt.PROBE_CRFS[0]
    assert choice.predicted_quality is not None and choice.predicted_quality >= 40.0
    assert choice.predicted_kbps is not None and choice.predicted_kbps <= 9000.0 * 1.001


def _choice(name: str, height: int, kbps: float) -> RungChoice:
    return RungChoice(name=name, height=height, kept=True, reason="", crf=30, predicted_kbps=kbps)


@given(
    st.lists(
        st.tuples(st.integers(100, 2160), st.floats(1.0, 20_000.0)),
        min_size=1,
        max_size=8,
        unique_by=lambda t: t[0],
    )
)
def test_the_hull_keeps_the_top_and_the_lowest_rung_and_spaces_the_rest(
    rungs: list[tuple[int, float]],
) -> None:
    out = pt.convex_hull([_choice(f"r{h}", h, k) for h, k in rungs])
    assert [c.height for c in out] == sorted((h for h, _ in rungs), reverse=True)
    assert out[0].kept and out[-1].kept
    kept = [c for c in out if c.kept]
    for above, below in zip(kept, kept[1:-1], strict=False):  # the lowest is kept whatever its step
        assert (above.predicted_kbps or 0) >= pt.MIN_STEP * (below.predicted_kbps or 0) - 1e-6
    assert all(c.reason.startswith("dropped") for c in out if not c.kept)


def test_the_hull_drops_a_middle_rung_the_rung_above_barely_outspends() -> None:
    out = pt.convex_hull(
        [
            _choice("1080p", 1080, 30),
            _choice("720p", 720, 25),
            _choice("480p", 480, 10),
            _choice("360p", 360, 8),
        ]
    )
    assert [(c.name, c.kept) for c in out] == [
        ("1080p", True),
        ("720p", False),
        ("480p", True),
        ("360p", True),
    ]


@given(st.floats(0.5, 7200.0), st.lists(st.floats(0.0, 7200.0), max_size=40), st.integers(1, 6))
def test_samples_lie_within_the_source_and_do_not_overlap(
    duration: float, scenes: list[float], count: int
) -> None:
    starts, spread = pt.sample_starts(duration, scenes, count, 1.0)
    assert 1 <= len(starts) <= count and spread in ("scenes", "even")
    assert all(0.0 <= s and (s + 1.0 <= duration + 1e-3 or s == 0.0) for s in starts)
    assert all(b - a >= 1.0 - 1e-3 for a, b in zip(starts, starts[1:], strict=False))
    if spread == "scenes":
        assert set(starts) <= {round(c, 3) for c in scenes}


def test_samples_start_at_scene_changes_when_there_are_enough() -> None:
    assert pt.sample_starts(30.0, [2.0, 9.5, 15.2, 21.0, 28.0], 3, 1.0) == ([2.0, 15.2, 21.0], "scenes")
    assert pt.sample_starts(30.0, [5.0], 3, 1.0) == ([4.833, 14.5, 24.167], "even")


@pytest.mark.parametrize("rate,kb", [("5000k", 5000.0), ("2M", 2000.0), ("800000", 800.0)])
def test_rates_read_as_presets_write_them(rate: str, kb: float) -> None:
    assert pt.kbps(rate) == kb


# --- the job options ---------------------------------------------------------------------------------


def _package(**kw: object) -> JobRequested:
    return JobRequested(job_id="p1", kind="package", source_key="talk.mp4", **kw)  # type: ignore[arg-type]


def test_per_title_gets_the_documented_default_target() -> None:
    job = normalize_job(_package(ladder="per-title"))
    assert job.quality_target == pt.DEFAULT_TARGET == QualityTarget(psnr=40.0)
    assert normalize_job(job) == job  # normalising again changes nothing
    assert normalize_job(_package()).quality_target is None  # the fixed ladder stays the default


@pytest.mark.parametrize(
    "kw,field",
    [
        ({"ladder": "smart"}, "ladder"),
        ({"quality_target": QualityTarget(psnr=40)}, "quality_target"),
        ({"ladder": "per-title", "quality_target": QualityTarget()}, "quality_target"),
        ({"ladder": "per-title", "quality_target": QualityTarget(psnr=40, ssim=0.95)}, "quality_target"),
        ({"ladder": "per-title", "quality_target": QualityTarget(vmaf=93)}, "quality_target"),
        ({"ladder": "per-title", "preset": "abr-av1"}, "ladder"),
        ({"rung": RungSettings(crf=30, max_rate="1000k", buf_size="2000k")}, "rung"),
    ],
)
def test_per_title_options_are_refused_with_their_field(kw: dict[str, object], field: str) -> None:
    with pytest.raises(JobRequestError) as err:
        normalize_job(_package(**kw))
    assert err.value.field == field


def test_a_vmaf_target_names_the_missing_libvmaf(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("mpr_common.jobs.has_libvmaf", lambda: False)
    with pytest.raises(JobRequestError, match="libvmaf"):
        normalize_job(_package(ladder="per-title", quality_target=QualityTarget(vmaf=93)))


def test_ladder_is_a_package_option() -> None:
    with pytest.raises(JobRequestError) as err:
        normalize_job(JobRequested(job_id="t1", kind="transcode", source_key="a.mp4", ladder="per-title"))
    assert err.value.field == "ladder"


@given(
    st.sampled_from(["psnr", "ssim"]),
    st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.integers(-1000, 1000)),
)
@settings(max_examples=300)
def test_any_target_value_is_taken_within_its_bounds_and_refused_outside(metric: str, value: float) -> None:
    target = QualityTarget(**{metric: value})  # type: ignore[arg-type]
    lo, hi = pt.TARGET_BOUNDS[metric]
    inside = math.isfinite(value) and lo <= value <= hi
    try:
        job = normalize_job(_package(ladder="per-title", quality_target=target))
    except JobRequestError as exc:
        assert not inside and exc.field == "quality_target"
    else:
        assert inside and job.quality_target == target


@given(st.dictionaries(st.sampled_from(["psnr", "ssim", "vmaf", "bitrate"]), st.floats(0, 100), max_size=3))
def test_a_target_as_json_is_decoded_or_refused_never_crashes(raw: dict[str, float]) -> None:
    try:
        target = msgspec.convert(raw, QualityTarget, strict=False)
    except msgspec.ValidationError:
        return
    try:
        normalize_job(_package(ladder="per-title", quality_target=target))
    except JobRequestError as exc:
        assert exc.field == "quality_target"


def test_ffmpegs_filters_are_detected_once() -> None:
    from mpr_common.ffmpeg_features import has_filter

    assert has_filter("scdet")  # the analysis' scene detector, in every FFmpeg since 4.4
    assert not has_filter("no-such-filter")
