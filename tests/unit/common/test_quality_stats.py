"""Quality statistics: nearest-rank 5th percentile, and a stitched output's statistics from its chunks'
per-frame values equal to those of all its frames taken together."""

from __future__ import annotations

import math

from hypothesis import given
from hypothesis import strategies as st

from mpr_common.events import JobCompleted, Rendition
from mpr_common.quality import PSNR_CAP, merge, metric_stats, quality_of, shown, without_frames

psnr_values = st.floats(min_value=0.0, max_value=PSNR_CAP).map(lambda v: round(v, 2))
ssim_values = st.floats(min_value=0.0, max_value=1.0).map(lambda v: round(v, 5))
chunk = st.integers(min_value=1, max_value=40).flatmap(
    lambda n: st.tuples(
        st.lists(psnr_values, min_size=n, max_size=n), st.lists(ssim_values, min_size=n, max_size=n)
    )
)


def test_nearest_rank_percentile_is_a_frame_value():
    values = [float(v) for v in range(1, 101)]  # 100 frames: the 5th lowest
    stats = metric_stats(list(reversed(values)))
    assert stats is not None
    assert (stats.min, stats.p5, stats.mean) == (1.0, 5.0, 50.5)
    one = metric_stats([42.0])
    assert one is not None and one.p5 == one.min == one.mean == 42.0
    assert metric_stats([]) is None


@given(st.lists(chunk, min_size=1, max_size=8))
def test_merged_chunks_equal_the_concatenated_frames(chunks):
    parts = [quality_of(p, s, width=320, height=180, keep_frames=True) for p, s in chunks]
    merged = merge(parts)
    psnr = [v for p, _ in chunks for v in p]
    ssim = [v for _, s in chunks for v in s]
    whole = quality_of(psnr, ssim, width=320, height=180)
    assert merged == whole
    assert merged is not None and merged.frames == len(psnr)
    assert merged.psnr is not None and merged.ssim is not None
    assert merged.psnr.min == min(psnr)
    assert math.isclose(merged.psnr.mean, math.fsum(psnr) / len(psnr), abs_tol=1e-6)
    assert merged.psnr.p5 == sorted(psnr)[math.ceil(0.05 * len(psnr)) - 1]
    assert not merged.frame_psnr and not merged.frame_ssim  # the stitched output's own carries none


def test_a_part_not_measured_leaves_the_whole_unmeasured():
    measured = quality_of([40.0], [0.9], keep_frames=True)
    assert merge([measured, None]) is None
    assert merge([]) is None
    # a part measured without per-frame values: no statistic over only some of the frames
    assert merge([measured, without_frames(measured)]) is None


def test_receivers_see_statistics_without_frames():
    q = quality_of([40.0, 41.0], [0.9, 0.95], keep_frames=True)
    done = JobCompleted(
        job_id="j",
        output_key="k",
        output_bucket="b",
        quality=q,
        rendition=Rendition(name="360p", type="video", playlist="p", init="i", media_pattern="m", quality=q),
    )
    out = shown(done)
    assert out.quality is not None and out.quality.frame_psnr == [] and out.quality.psnr == q.psnr
    assert out.rendition is not None and out.rendition.quality is not None
    assert out.rendition.quality.frame_ssim == [] and out.rendition.quality.ssim == q.ssim
