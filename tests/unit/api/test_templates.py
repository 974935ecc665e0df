"""Job templates (mpr_api.automation): output key patterns, how a request and a template merge, which
templates make valid jobs, and template references."""

from __future__ import annotations

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mpr_api.automation.templates import (
    MAX_REVISION,
    Template,
    TemplateError,
    check_template,
    given_fields,
    job_from_template,
    merged_fields,
    parse_revision,
    parse_template_ref,
    render_output_key,
    templated_fields,
)
from mpr_api.jobs.schemas import JobCreate
from mpr_common.codec import decode, encode
from mpr_common.jobs import normalize_job
from mpr_common.presets import DEFAULT_PRESET


@pytest.mark.parametrize(
    ("pattern", "key", "expected"),
    [
        ("{path}_720p.mp4", "shows/ep1/clip.mov", "shows/ep1/clip_720p.mp4"),
        ("{dir}/{stem}/{job_id}/{preset}.mp4", "shows/ep1/clip.mov", "shows/ep1/clip/j1/h264-720p.mp4"),
        ("{dir}/{stem}/{job_id}/{preset}.mp4", "clip.mov", "clip/j1/h264-720p.mp4"),  # empty folder collapses
        ("out/{name}", "a/b c.mkv", "out/b c.mkv"),
        ("copies/{key}", "a/b.mkv", "copies/a/b.mkv"),
        ("{stem}{ext}", "a/B.MOV", "B.MOV"),
        ("{kind}/{stem}.mp4", "a/b.mov", "transcode/b.mp4"),
    ],
)
def test_output_key_placeholders(pattern, key, expected):
    assert render_output_key(pattern, key, "j1", "transcode", None) == expected


@pytest.mark.parametrize("pattern", ["{nope}.mp4", "{stem}}.mp4", "{stem.mp4", "{0.__class__}.mp4", "{}.mp4"])
def test_unknown_placeholders_and_stray_braces_are_refused(pattern):
    with pytest.raises(TemplateError, match="output_key"):
        render_output_key(pattern, "a/b.mov", "j1", "transcode", "h264-720p")


def test_a_template_gives_defaults_and_the_request_what_it_sets():
    t = Template(
        kind="transcode", preset="h264-480p", loudnorm=True, priority="bulk", output_key="{path}.mp4"
    )
    fields = merged_fields(t, {"preset": "h264-1080p"})
    assert fields["preset"] == "h264-1080p" and fields["loudnorm"] is True and fields["priority"] == "bulk"
    assert fields["output_key"] == "{path}.mp4"  # rendered by templated_fields
    rendered = templated_fields(t, {}, "a/b.mov", "j1")
    assert rendered["output_key"] == "a/b.mp4"
    own = templated_fields(t, {"output_key": "mine/{x}.mp4"}, "a/b.mov", "j1")
    assert own["output_key"] == "mine/{x}.mp4"  # a request's own key is literal, never a pattern


def test_given_fields_are_those_a_request_sets_to_other_than_its_default():
    body = JobCreate(
        kind="transcode", source_key="a.mp4", template="t", preset="h264-480p", priority="normal"
    )
    assert given_fields(body) == {
        "kind": "transcode",
        "preset": "h264-480p",
    }  # kind is required: always given
    body = msgspec.convert({"kind": "audio", "source_key": "a.mp4", "loudnorm": True, "start": 0}, JobCreate)
    assert given_fields(body) == {"kind": "audio", "loudnorm": True, "start": 0}


def test_a_job_made_from_a_template_records_it_and_is_normalised_like_any_other():
    t = Template(kind="thumbnail", preset="png-640", start=2.5)
    job = normalize_job(job_from_template(t, "thumbs@7", source_key="x/y.mp4", job_id="j-1"))
    assert (job.kind, job.preset, job.start, job.template) == ("thumbnail", "png-640", 2.5, "thumbs@7")
    assert job.output_key == "x/y/j-1/png-640.png"  # the default output key, under the job's id
    plain = normalize_job(job_from_template(Template(kind="audio"), "a@1", source_key="s.mp4", job_id="j2"))
    assert plain.preset == DEFAULT_PRESET["audio"]


@pytest.mark.parametrize(
    ("template", "reason"),
    [
        (Template(kind="transcode", preset="nope"), "unknown preset"),
        (Template(kind="transcode", preset="aac-128k"), "is for audio jobs"),
        (Template(kind="trim"), "start and/or end"),
        (Template(kind="transcode", output_key="{path}.mkv"), "must end with .mp4"),
        (Template(kind="transcode", output_key="../{name}"), "output_key"),
        (Template(kind="thumbnail", storyboard=True), "storyboard"),
        (Template(kind="package", start=1), "whole source"),
        (Template(kind="audio", preset="flac", output_key="{nope}.flac"), "unknown placeholder"),
    ],
)
def test_a_template_that_makes_no_valid_job_is_refused_with_the_reason(template, reason):
    with pytest.raises(TemplateError, match=reason):
        check_template(template)


def test_a_valid_template_passes_its_check_and_round_trips():
    t = Template(kind="package", preset="abr-h264", storyboard=True, priority="urgent", description="ladder")
    assert check_template(t).kind == "package"
    assert decode(encode(t), Template) == t
    with pytest.raises(msgspec.ValidationError):
        decode(b'{"kind": "transcode", "colour": "red"}', Template)  # unknown fields are refused


@pytest.mark.parametrize(
    ("ref", "parsed"), [("web", ("web", None)), ("web@12", ("web", 12)), ("a.b-c_1@3", ("a.b-c_1", 3))]
)
def test_template_references(ref, parsed):
    assert parse_template_ref(ref) == parsed


@pytest.mark.parametrize(
    "ref",
    [
        "",
        "web@",
        "web@0",
        "web@x",
        "@3",
        "a/b",
        "-x",
        "web@1@2",
        f"web@{MAX_REVISION + 1}",  # more than a KV revision can be
        "web@18446744073709551616",
        "web@" + "9" * 5000,  # more digits than int() converts
        "web@\u00b2",  # a digit to str.isdigit, not to int()
        "web@\u0661",
    ],
)
def test_bad_template_references(ref):
    with pytest.raises(TemplateError):
        parse_template_ref(ref)


@settings(max_examples=300, deadline=None)
@given(ref=st.one_of(st.text(max_size=40), st.integers().map(lambda n: f"web@{n}")))
def test_any_reference_parses_or_is_a_template_error(ref):
    try:
        name, revision = parse_template_ref(ref)
    except TemplateError:
        return
    assert revision is None or 1 <= revision <= MAX_REVISION


@given(st.integers())
def test_revisions_in_range_and_only_those(n):
    assert parse_revision(str(n)) == (n if 1 <= n <= MAX_REVISION else None)
