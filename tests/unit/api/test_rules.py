"""Automation rules (mpr_api.automation): prefixes and globs, conditions over ffprobe's metadata,
objects ffprobe could not read, which rules are refused, and the ids that make a firing happen once."""

from __future__ import annotations

import msgspec
import pytest

from mpr_api.automation.globs import compile_glob
from mpr_api.automation.rules import (
    Condition,
    Rule,
    check_rule,
    condition_holds,
    facts,
    firing_id,
    key_matches,
    rule_job,
    rule_job_id,
    rule_matches,
)
from mpr_api.automation.templates import Template, TemplateError
from mpr_common.events import MediaInfo

HD = MediaInfo(
    format_name="mov,mp4,m4a,3gp,3g2,mj2",
    duration=12.0,
    video_codec="h264",
    width=1280,
    height=720,
    fps=25.0,
    audio_codec="aac",
    channels=2,
    sample_rate=48000,
    streams=2,
)
SOUND = MediaInfo(
    format_name="flac", duration=5.0, audio_codec="flac", channels=2, sample_rate=44100, streams=1
)


def c(field: str, op: str, value) -> Condition:
    return msgspec.convert({"field": field, "op": op, "value": value}, Condition)


@pytest.mark.parametrize(
    ("glob", "key", "matches"),
    [
        ("*.mp4", "a.mp4", True),
        ("*.mp4", "dir/a.mp4", False),  # * stays within one folder
        ("**/*.mp4", "a.mp4", True),  # **/ also matches no folder
        ("**/*.mp4", "x/y/z/a.mp4", True),
        ("auto/**", "auto/x/y.mov", True),
        ("auto/*/raw/*.{mp4,mov}", "auto/show/raw/ep1.mov", True),
        ("auto/*/raw/*.{mp4,mov}", "auto/show/raw/ep1.mkv", False),
        ("clip-?.mp4", "clip-7.mp4", True),
        ("clip-?.mp4", "clip-77.mp4", False),
        ("take[0-9].mp4", "take3.mp4", True),
        ("take[!0-9].mp4", "take3.mp4", False),
        ("a+b (1).mp4", "a+b (1).mp4", True),  # regex characters are literal
        ("*.MP4", "a.mp4", False),  # case-sensitive, as S3 keys are
    ],
)
def test_globs(glob, key, matches):
    assert compile_glob(glob).run(key) is matches


@pytest.mark.parametrize("glob", ["a[.mp4", "{a,b.mp4", "{a,{b}}.mp4", "[z-a].mp4", "[!].mp4"])
def test_malformed_globs_are_refused(glob):
    with pytest.raises(TemplateError, match="glob"):
        check_rule(Rule(template="t", glob=glob))


def test_prefix_and_glob_both_apply():
    rule = Rule(template="t", prefix="auto/", glob="**/*.mov")
    assert key_matches(rule, "auto/a/b.mov")
    assert not key_matches(rule, "manual/a/b.mov")
    assert not key_matches(rule, "auto/a/b.mp4")
    assert key_matches(Rule(template="t"), "anything.mp4")  # neither: the whole bucket


@pytest.mark.parametrize(
    ("condition", "holds"),
    [
        (c("height", ">=", 720), True),
        (c("height", ">", 720), False),
        (c("width", "<", 1920), True),
        (c("duration", "<=", 12), True),
        (c("fps", "==", 25), True),
        (c("height", "in", [480, 720, 1080]), True),
        (c("size", ">", 1000), True),
        (c("video_codec", "==", "H264"), True),  # names compare case-insensitively
        (c("video_codec", "!=", "hevc"), True),
        (c("audio_codec", "in", ["mp3", "aac"]), True),
        (c("format", "==", "mp4"), True),  # one of ffprobe's names for the format
        (c("format", "in", ["matroska", "mov"]), True),
        (c("format", "!=", "mp4"), False),
        (c("format", "!=", "matroska"), True),
        (c("has_audio", "==", True), True),
        (c("has_video", "!=", True), False),
        (c("probed", "==", True), True),
    ],
)
def test_conditions_over_a_video(condition, holds):
    assert condition_holds(condition, facts(HD, 5000)) is holds


@pytest.mark.parametrize(
    ("condition", "holds"),
    [
        (c("has_video", "==", False), True),
        (c("has_audio", "==", True), True),
        # what the probe did not find meets no condition, whatever the operator
        (c("height", "<", 360), False),
        (c("height", "!=", 720), False),
        (c("video_codec", "!=", "h264"), False),
    ],
)
def test_conditions_over_a_sound_file(condition, holds):
    assert condition_holds(condition, facts(SOUND, 100)) is holds


def test_an_object_ffprobe_could_not_read_meets_only_size_and_probed_conditions():
    known = facts(None, 100)
    assert not condition_holds(c("height", ">=", 0), known)
    assert not condition_holds(c("has_video", "==", False), known)
    assert condition_holds(c("probed", "==", False), known)
    assert condition_holds(c("size", "==", 100), known)
    # so a rule without conditions still starts a job for it (it fails visibly); one with conditions does not
    assert rule_matches(Rule(template="t", prefix="in/"), "b-in", "b-in", "in/x.mp4", None, 100)
    assert not rule_matches(
        Rule(template="t", prefix="in/", conditions=[c("height", ">=", 360)]),
        "b-in",
        "b-in",
        "in/x.mp4",
        None,
    )


def test_a_rule_matches_its_bucket_key_and_every_condition():
    rule = Rule(template="t", prefix="auto/", conditions=[c("height", ">=", 360), c("has_audio", "==", True)])
    assert rule_matches(rule, "in", "in", "auto/a.mp4", HD)
    assert not rule_matches(rule, "in", "other", "auto/a.mp4", HD)  # another bucket
    assert not rule_matches(rule, "in", "in", "manual/a.mp4", HD)
    small = msgspec.structs.replace(HD, height=240)
    assert not rule_matches(rule, "in", "in", "auto/a.mp4", small)
    mute = msgspec.structs.replace(HD, audio_codec=None)
    assert not rule_matches(rule, "in", "in", "auto/a.mp4", mute)
    assert rule_matches(msgspec.structs.replace(rule, bucket="other"), "in", "other", "auto/a.mp4", HD)


@pytest.mark.parametrize(
    ("condition", "reason"),
    [
        ({"field": "height", "op": ">=", "value": "tall"}, "is a number"),
        ({"field": "video_codec", "op": ">", "value": "h264"}, "is a name"),
        ({"field": "video_codec", "op": "==", "value": 264}, "is a name"),
        ({"field": "has_audio", "op": ">", "value": True}, "true or false"),
        ({"field": "has_audio", "op": "==", "value": 1}, "true or false"),
        ({"field": "height", "op": "in", "value": 720}, "'in' takes a list"),
        ({"field": "height", "op": "==", "value": [720]}, "'in' takes a list"),
        ({"field": "height", "op": ">=", "value": True}, "is a number"),
    ],
)
def test_conditions_that_do_not_fit_their_field_are_refused(condition, reason):
    rule = msgspec.convert({"template": "t", "conditions": [condition]}, Rule)
    with pytest.raises(TemplateError, match=reason):
        check_rule(rule)


def test_unknown_fields_and_operators_are_refused_by_the_contract():
    for bad in (
        {"template": "t", "conditions": [{"field": "colour", "op": "==", "value": "red"}]},
        {"template": "t", "conditions": [{"field": "height", "op": "~", "value": 1}]},
        {"template": "t", "when": "always"},
        {"template": "t@3"},
    ):
        with pytest.raises(msgspec.ValidationError):
            msgspec.convert(bad, Rule)


def test_one_firing_and_one_job_id_per_rule_bucket_key_and_etag():
    base = ("r1", "in", "a.mp4", "e1")
    assert firing_id(*base) == firing_id(*base) and rule_job_id(*base) == rule_job_id(*base)
    others = [
        ("r2", "in", "a.mp4", "e1"),
        ("r1", "in2", "a.mp4", "e1"),
        ("r1", "in", "b.mp4", "e1"),
        ("r1", "in", "a.mp4", "e2"),
    ]
    assert len({firing_id(*o) for o in [base, *others]}) == 5
    assert len({rule_job_id(*o) for o in [base, *others]}) == 5
    # separators keep ("a", "bc") and ("ab", "c") apart
    assert firing_id("r", "in", "a", "bc") != firing_id("r", "in", "ab", "c")


def test_the_job_a_rule_starts():
    rule = Rule(template="web", prefix="auto/", priority="urgent")
    t = Template(kind="transcode", preset="h264-480p", output_key="{dir}/web/{stem}.mp4", priority="bulk")
    job = rule_job("r1", rule, t, 9, bucket="in", key="auto/x/clip.mov", etag="e", default_bucket="in")
    assert job.job_id == rule_job_id("r1", "in", "auto/x/clip.mov", "e") and len(job.job_id) <= 50
    assert (job.kind, job.preset, job.output_key) == ("transcode", "h264-480p", "auto/x/web/clip.mp4")
    assert (job.priority, job.template, job.rule, job.requested_by) == ("urgent", "web@9", "r1", "rule:r1")
    assert job.source_bucket is None  # S3_BUCKET_IN
    other = rule_job("r1", rule, t, 9, bucket="archive", key="a.mov", etag="e", default_bucket="in")
    assert other.source_bucket == "archive"


def test_a_template_that_cannot_make_a_job_for_an_object_is_a_template_error():
    t = Template(kind="audio", preset="mp3-192k", output_key="{path}{ext}")  # .mov is not .mp3
    with pytest.raises(TemplateError, match=r"\.mp3"):
        rule_job("r1", Rule(template="a"), t, 1, bucket="in", key="a.mov", etag="e", default_bucket="in")
