"""A job's watermark and preview options: any input is either a normalised spec within its bounds or a
JobRequestError naming the field, never another exception; normalize_job takes them on the kinds that
draw them only."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mpr_common.events import JobRequested, PreviewOptions, Watermark
from mpr_common.jobs import JobRequestError, normalize_job
from mpr_common.overlays import (
    DEFAULT_WATERMARK_SIZE,
    DEFAULT_WATERMARK_WIDTH,
    MAX_PREVIEW_CLIPS,
    MAX_WATERMARK_MARGIN,
    MAX_WATERMARK_TEXT,
    normalize_preview,
    normalize_watermark,
)

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=300),
)
values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3), max_leaves=6)  # fmt: skip
WATERMARK_FIELDS = ["key", "text", "position", "margin", "opacity", "width", "size"]
likely = {
    "key": st.sampled_from(["logo.png", "brand/logo.jpg", "", "../x.png", "a" * 2000]),
    "text": st.text(max_size=250),
    "position": st.sampled_from(["top-left", "top-right", "bottom-left", "bottom-right", "center", "middle"]),
    "margin": st.integers(min_value=-5, max_value=600),
    "opacity": st.floats(min_value=-0.5, max_value=1.5) | st.just(math.nan),
    "width": st.floats(min_value=0, max_value=1.2),
    "size": st.floats(min_value=0, max_value=0.6),
}
specs = st.one_of(
    values,
    st.fixed_dictionaries({}, optional={f: st.one_of(likely[f], values) for f in WATERMARK_FIELDS}),
)


@settings(max_examples=400, deadline=None)
@given(specs)
def test_any_watermark_is_a_normalised_spec_or_a_field_error(raw):
    try:
        wm = normalize_watermark(raw)
    except JobRequestError as exc:
        assert exc.field is not None and exc.field.split(".")[0] == "watermark"
        assert exc.field == "watermark" or exc.field.split(".")[1] in WATERMARK_FIELDS, exc.field
        return
    assert isinstance(wm, Watermark)
    assert (wm.key is None) != (wm.text is None)
    assert 0 <= wm.margin <= MAX_WATERMARK_MARGIN and 0.0 <= wm.opacity <= 1.0
    if wm.key is not None:
        assert wm.size is None and wm.width is not None and 0 < wm.width <= 1
    else:
        assert wm.width is None and wm.size is not None and 0 < wm.size <= 0.5
        assert wm.text and len(wm.text) <= MAX_WATERMARK_TEXT
    assert normalize_watermark(wm) == wm  # normalising twice changes nothing


@settings(max_examples=200, deadline=None)
@given(st.one_of(values, st.fixed_dictionaries({}, optional={
    "clips": st.integers(-2, 30), "clip_seconds": st.floats(0, 8), "width": st.integers(0, 2000),
    "fps": st.floats(0, 40) | st.just(math.inf)})))  # fmt: skip
def test_any_preview_options_are_normalised_or_a_field_error(raw):
    try:
        p = normalize_preview(raw)
    except JobRequestError as exc:
        assert exc.field is not None and exc.field.split(".")[0] == "preview"
        return
    assert isinstance(p, PreviewOptions)
    assert 1 <= p.clips <= MAX_PREVIEW_CLIPS and p.width % 2 == 0 and math.isfinite(p.fps)


def test_defaults_are_filled_in():
    assert normalize_watermark({"key": "logo.png"}) == Watermark(
        key="logo.png", position="top-right", margin=16, opacity=0.8, width=DEFAULT_WATERMARK_WIDTH
    )
    assert normalize_watermark({"text": "MPR"}).size == DEFAULT_WATERMARK_SIZE
    assert normalize_preview(None) == PreviewOptions(clips=6, clip_seconds=1.0, width=320, fps=10.0)


@pytest.mark.parametrize(
    ("raw", "field"),
    [
        ({}, "watermark"),
        ({"key": "a.png", "text": "b"}, "watermark"),
        ({"key": "a.png", "opacity": 2}, "watermark.opacity"),
        ({"key": "a.png", "position": "middle"}, "watermark.position"),
        ({"key": "a.png", "margin": 1000}, "watermark.margin"),
        ({"key": "a.png", "size": 0.1}, "watermark.size"),
        ({"text": "a\nb"}, "watermark.text"),
        ({"text": "x", "width": 0.2}, "watermark.width"),
        ({"key": "../up.png"}, "watermark.key"),
    ],
)
def test_a_wrong_watermark_names_its_field(raw, field):
    with pytest.raises(JobRequestError) as exc:
        normalize_watermark(raw)
    assert exc.value.field == field


def job(kind: str, **kw) -> JobRequested:
    return JobRequested(job_id="j1", kind=kind, source_key="in/clip.mp4", **kw)  # type: ignore[arg-type]


def test_normalize_job_takes_a_watermark_on_the_kinds_that_draw_it():
    for kind in ("transcode", "package"):
        assert normalize_job(job(kind, watermark={"text": "MPR"})).watermark == Watermark(
            text="MPR", position="top-right", margin=16, opacity=0.8, size=DEFAULT_WATERMARK_SIZE
        )
    for kind, extra, field in [
        ("thumbnail", {}, "watermark"),
        ("transcode", {"preset": "copy"}, "watermark"),
        ("transcode", {"watermark": {"text": "MPR", "opacity": -1}}, "watermark.opacity"),
    ]:
        with pytest.raises(JobRequestError) as exc:
            normalize_job(job(kind, **{"watermark": {"text": "MPR"}, **extra}))
        assert exc.value.field == field


def test_a_preview_job_gets_its_options_and_a_webp_or_gif_key():
    normalized = normalize_job(job("preview"))
    assert normalized.output_key == "in/clip/j1/preview.webp"
    assert normalized.preview == PreviewOptions()
    assert normalize_job(
        job("preview", output_key="p/x.gif", preview={"clips": 3})
    ).preview == PreviewOptions(clips=3)
    with pytest.raises(JobRequestError) as exc:
        normalize_job(job("preview", output_key="p/x.mp4"))
    assert exc.value.field == "output_key"
    with pytest.raises(JobRequestError) as exc:
        normalize_job(job("transcode", preview={"clips": 3}))
    assert exc.value.field == "preview"
