"""keep_if: the verdict on an output (size per second of media against the source's, quality floors) and
the request rules of keep_if, min_psnr and min_ssim, over any sizes, durations, metrics and JSON values."""

from __future__ import annotations

import math

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from mpr_api.jobs.schemas import JobCreate
from mpr_common.events import KEEP_IFS, JobCompleted, JobRequested, MetricStats, Quality
from mpr_common.jobs import JobRequestError, normalize_job
from mpr_common.keeping import BETTER_MIN_PSNR, decide, judged, kbps_text, not_kept_line, rate
from mpr_common.quality import PSNR_CAP

sizes = st.integers(min_value=1, max_value=10**12)
seconds = st.floats(min_value=0.04, max_value=24 * 3600.0)
psnr_means = st.floats(min_value=0.0, max_value=PSNR_CAP)
ssim_means = st.floats(min_value=0.0, max_value=1.0)


def job(**kw) -> JobRequested:
    return normalize_job(JobRequested(job_id="j1", kind="transcode", source_key="in/a.mp4", **kw))


def quality(psnr: float | None, ssim: float | None) -> Quality:
    def stats(m: float | None) -> MetricStats | None:
        return None if m is None else MetricStats(mean=m, min=m, p5=m)

    return Quality(frames=10, psnr=stats(psnr), ssim=stats(ssim))


def verdict(j: JobRequested, src: tuple[int, float | None], out: tuple[int, float | None], q=None):
    return decide(
        j, source_size=src[0], source_seconds=src[1], output_size=out[0], output_seconds=out[1], quality=q
    )


@given(sizes, seconds, sizes, seconds)
def test_smaller_keeps_exactly_the_outputs_at_or_below_the_sources_rate(ss, sd, os_, od):
    v = verdict(job(keep_if="smaller"), (ss, sd), (os_, od))
    assert v.kept == (os_ / od <= ss / sd)
    assert v.reason == (None if v.kept else "larger")
    assert v.source_rate == round(ss / sd, 1) and v.output_rate == round(os_ / od, 1)
    assert v.output_size == os_
    if not v.kept:  # what the console says, from the figures
        assert not_kept_line(v) == f"Not kept: output {kbps_text(os_ / od)} > source {kbps_text(ss / sd)}"


@given(sizes, seconds, st.one_of(st.none(), psnr_means), st.one_of(st.none(), ssim_means))
def test_always_keeps_whatever_the_size_and_quality(ss, sd, p, s):
    for j in (job(), job(keep_if="always")):
        v = verdict(j, (ss, sd), (ss * 100, sd), quality(p, s))
        assert v.kept and v.reason is None
    assert not judged(job()) and not judged(job(keep_if="always"))


@given(sizes, seconds, sizes, psnr_means, ssim_means, psnr_means, ssim_means)
def test_floors_apply_to_the_means_whatever_keep_if(ss, sd, os_, p, s, min_p, min_s):
    min_p, min_s = max(min_p, 0.01), max(min_s, 0.0001)
    for keep_if in (None, "always"):
        v = verdict(job(keep_if=keep_if, min_psnr=min_p, min_ssim=min_s), (ss, sd), (os_, sd), quality(p, s))
        assert v.kept == (p >= min_p and s >= min_s)
        if p < min_p:
            assert v.reason == "below_min_psnr"
        elif s < min_s:
            assert v.reason == "below_min_ssim"
        assert (v.min_psnr, v.min_ssim, v.psnr, v.ssim) == (min_p, min_s, p, s)


@given(sizes, seconds, sizes, seconds, psnr_means)
def test_better_is_smaller_and_at_the_default_floor(ss, sd, os_, od, p):
    v = verdict(job(keep_if="better"), (ss, sd), (os_, od), quality(p, 0.99))
    smaller = os_ / od <= ss / sd
    assert v.kept == (smaller and p >= BETTER_MIN_PSNR)
    assert v.min_psnr == BETTER_MIN_PSNR and v.min_ssim is None
    if not smaller:  # the size is the first reason, and both are said
        assert v.reason == "larger"
        assert ("PSNR" in v.detail) == (p < BETTER_MIN_PSNR)


def test_better_with_a_floor_of_its_own_takes_that_floor_only():
    v = verdict(job(keep_if="better", min_ssim=0.9), (1000, 1.0), (500, 1.0), quality(20.0, 0.95))
    assert v.kept and v.min_psnr is None and v.min_ssim == 0.9
    assert v.detail == "output 0.5 kB/s ≤ source 1.0 kB/s; SSIM 0.9500 ≥ floor 0.9000"


@given(st.sampled_from([(0, 10.0), (1000, None), (1000, 0.0), (1000, math.nan)]))
def test_an_unknown_source_rate_is_not_kept(src):
    v = verdict(job(keep_if="smaller"), src, (1, 10.0))
    assert not v.kept and v.reason == "not_measured" and v.source_rate is None


def test_a_floor_on_a_quality_not_measured_is_not_kept():
    for q in (None, quality(None, 0.99)):
        v = verdict(job(min_psnr=30.0), (1000, 1.0), (10, 1.0), q)
        assert not v.kept and v.reason == "not_measured" and v.detail == "PSNR was not measured"
    v = verdict(job(min_ssim=0.5), (1000, 1.0), (10, 1.0), quality(40.0, None))
    assert not v.kept and v.reason == "not_measured"


def test_rate_and_its_text():
    assert rate(1000, 2.0) == 500.0 and rate(1, None) is None and rate(1, 0.0) is None
    assert rate(5, math.inf) is None
    assert kbps_text(412_345) == "412 kB/s" and kbps_text(2_500) == "2.5 kB/s"


def test_the_verdict_rides_on_job_completed_with_defaults_for_old_publishers():
    old = msgspec.json.decode(b'{"job_id":"j","output_key":"k","output_bucket":"b"}', type=JobCompleted)
    assert old.outcome == "kept" and old.keep is None
    v = verdict(job(keep_if="smaller"), (1000, 1.0), (2000, 1.0))
    done = JobCompleted(job_id="j", output_key="k", output_bucket="b", outcome="not_kept", keep=v)
    again = msgspec.json.decode(msgspec.json.encode(done), type=JobCompleted)
    assert again.keep == v and again.outcome == "not_kept"


# --- the request's options ------------------------------------------------------------------------
def refused(**kw) -> str | None:
    """The field a request with ``kw`` is refused on, None when it is accepted."""
    fields = {"job_id": "j1", "kind": "transcode", "source_key": "in/a.mp4", **kw}
    try:
        normalize_job(JobRequested(**fields))
    except JobRequestError as exc:
        assert str(exc)
        return exc.field
    return None


def test_which_jobs_take_the_options():
    assert refused(keep_if="smaller") is None
    assert refused(keep_if="smaller", preset="vp9-720p") is None  # size only: any re-encode
    assert refused(kind="trim", start=1.0, preset="h264-480p", keep_if="better") is None
    assert refused(kind="trim", start=1.0, keep_if="smaller") == "keep_if"  # "accurate" copies GOPs
    assert refused(preset="copy", min_psnr=30.0) == "min_psnr"
    assert refused(kind="package", keep_if="smaller") == "keep_if"
    assert refused(kind="audio", min_ssim=0.9) == "min_ssim"
    assert refused(kind="thumbnail", keep_if="better") == "keep_if"
    # a floor needs a measured quality: H.264 only
    assert refused(preset="vp9-720p", min_psnr=30.0) == "min_psnr"
    assert refused(preset="vp9-720p", keep_if="better") == "keep_if"
    assert refused(preset="vp9-720p", keep_if="better", min_ssim=0.9) == "min_ssim"


@given(
    st.one_of(st.none(), st.text(max_size=12), st.sampled_from(KEEP_IFS)),
    st.one_of(st.none(), st.floats(allow_nan=True, allow_infinity=True), st.integers(-5, 500)),
    st.one_of(st.none(), st.floats(allow_nan=True, allow_infinity=True), st.integers(-5, 5)),
)
def test_any_json_values_are_accepted_only_in_range_else_a_field_error(keep_if, min_psnr, min_ssim):
    body = {"source_key": "in/a.mp4", "kind": "transcode", "keep_if": keep_if}
    body |= {"min_psnr": min_psnr, "min_ssim": min_ssim}
    try:  # as the API decodes a body: anything but a keep_if of KEEP_IFS and numbers is a 400 there
        create = msgspec.convert(body, JobCreate)
    except msgspec.ValidationError:
        assert keep_if not in (None, *KEEP_IFS)
        return
    field = refused(keep_if=create.keep_if, min_psnr=create.min_psnr, min_ssim=create.min_ssim)
    psnr_ok = min_psnr is None or (math.isfinite(min_psnr) and 0 < min_psnr <= PSNR_CAP)
    ssim_ok = min_ssim is None or (math.isfinite(min_ssim) and 0 < min_ssim <= 1)
    if not psnr_ok:
        assert field == "min_psnr"
    elif not ssim_ok:
        assert field == "min_ssim"
    else:
        assert field is None


@pytest.mark.parametrize("name", ["min_psnr", "min_ssim"])
def test_a_floor_of_true_is_not_a_number(name):
    assert refused(**{name: True}) == name
