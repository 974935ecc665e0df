import math

import msgspec
import pytest

from mpr_common.codec import decode, encode
from mpr_common.events import ChunkSpan, JobCompleted, JobRequested, ObjectFound
from mpr_common.job_status import next_status
from mpr_common.jobs import JobRequestError, job_identity, normalize_job


def job(**kw) -> JobRequested:
    base = {"job_id": "j1", "kind": "transcode", "source_key": "in/a.mp4"}
    return JobRequested(**{**base, **kw})


def test_defaults_are_filled():
    j = normalize_job(job())
    assert j.preset == "h264-720p"
    assert j.output_key == "in/a/j1/h264-720p.mp4"
    assert normalize_job(job(kind="hls")).output_key == "in/a/j1/index.m3u8"
    assert normalize_job(job(kind="trim", start=1)).output_key == "in/a/j1/accurate.mp4"
    assert (
        normalize_job(job(kind="trim", source_key="b.mkv", end=2, preset="copy")).output_key
        == "b/j1/copy.mkv"
    )
    assert normalize_job(job(kind="package")).output_key == "in/a/j1/master.m3u8"
    assert normalize_job(job(kind="package")).preset == "abr-h264"
    assert normalize_job(job(kind="storyboard")).output_key == "in/a/j1/storyboard.vtt"
    assert normalize_job(job(kind="thumbnail")).output_key.endswith(".jpg")
    assert normalize_job(job(kind="audio", source_key="v.mov")).output_key == "v/j1/aac-128k.m4a"


@pytest.mark.parametrize(
    "kw,msg",
    [
        ({"kind": "explode"}, "kind must be one of"),
        ({"source_key": "../a.mp4"}, "source_key"),
        ({"source_key": "-i.mp4"}, "source_key"),
        ({"source_key": "notes.txt"}, "supported media extension"),
        ({"preset": "nope"}, "unknown preset"),
        ({"preset": "jpeg-320"}, "is for thumbnail jobs"),
        ({"kind": "trim"}, "needs start"),
        ({"kind": "trim", "start": 5, "end": 5}, "end must be greater"),
        ({"start": -1}, "start must be"),
        ({"end": math.inf}, "end must be"),
        ({"start": math.nan}, "start must be"),
        ({"kind": "thumbnail", "end": 3}, "takes start"),
        ({"output_key": "/abs.mp4"}, "output_key"),
        ({"output_key": "x.webm"}, "must end with .mp4"),
        ({"kind": "trim", "start": 1, "output_key": "x.txt"}, "supported media extension"),
        ({"job_id": "a b"}, "job_id"),
        ({"job_id": "x" * 65}, "job_id"),
        ({"source_bucket": "UPPER"}, "bucket"),
    ],
)
def test_bad_requests_say_why(kw, msg):
    with pytest.raises(JobRequestError, match=msg):
        normalize_job(job(**kw))


def test_state_machine_is_monotonic():
    assert next_status(None, "running") == "running"
    assert next_status("queued", "running") == "running"
    assert next_status("running", "queued") == "running"
    assert next_status("running", "completed") == "completed"
    for terminal in ("completed", "failed", "cancelled"):
        for incoming in ("queued", "running", "completed", "failed", "cancelled"):
            assert next_status(terminal, incoming) == terminal


def test_events_roundtrip_and_tolerate_unknown_fields():
    ev = JobCompleted(job_id="j", output_key="o.mp4", output_bucket="b")
    assert decode(encode(ev), JobCompleted) == ev
    # A newer publisher adds a field: old consumers still decode.
    raw = msgspec.json.encode({"v": 2, "bucket": "b", "key": "k.mp4", "future_field": [1, 2]})
    assert decode(raw, ObjectFound).key == "k.mp4"
    # New fields have defaults: the minimal message from another team is valid.
    minimal = decode(b'{"kind": "thumbnail", "source_key": "a.mp4"}', JobRequested)
    assert minimal.v == 1 and minimal.job_id == ""  # each consumer derives the same id (job_identity)
    assert job_identity(minimal, "team-7", 12).job_id == "team-7"
    assert job_identity(minimal, None, 12).job_id == "js-12"
    assert job_identity(msgspec.structs.replace(minimal, job_id="own"), "x", 1).job_id == "own"


def test_event_missing_required_field_is_rejected():
    with pytest.raises(msgspec.ValidationError, match="source_key"):
        decode(b'{"kind": "thumbnail"}', JobRequested)


def test_jobs_name_only_allowed_buckets_and_never_write_into_a_source():
    from mpr_common.jobs import BucketPolicy
    from mpr_common.settings import S3Settings

    policy = BucketPolicy.of(
        S3Settings(bucket_in="in", bucket_out="out", source_buckets=frozenset({"archive"}))
    )
    ok = normalize_job(JobRequested(job_id="j", kind="audio", source_key="a.mp4"))
    policy.check(ok)
    policy.check(msgspec.structs.replace(ok, source_bucket="archive"))
    for bad, why in (
        ({"source_bucket": "private"}, "not one jobs may read"),
        ({"output_bucket": "in"}, "outputs never overwrite"),
        ({"output_bucket": "archive"}, "outputs never overwrite"),
        ({"output_bucket": "public-website"}, "not one jobs may write"),
    ):
        with pytest.raises(JobRequestError, match=why):
            policy.check(msgspec.structs.replace(ok, **bad))
    # A source bucket listed as an output too is still never written.
    both = BucketPolicy.of(S3Settings(bucket_in="in", bucket_out="out", output_buckets=frozenset({"in"})))
    with pytest.raises(JobRequestError, match="outputs never overwrite"):
        both.check(msgspec.structs.replace(ok, output_bucket="in"))


@pytest.mark.parametrize(
    "kw,msg",
    [
        ({"kind": "package", "job_id": "p" * 48}, "at most 47 characters"),
        ({"kind": "package", "start": 1.0}, "whole source"),
        ({"kind": "rendition"}, "package's child"),
        ({"kind": "transcode", "parent_id": "p"}, "belong to a package's child"),
        ({"kind": "rendition", "parent_id": "p", "rendition": "4k"}, "rendition must be one of"),
        ({"kind": "thumbnail", "loudnorm": True}, "loudnorm applies to"),
        ({"kind": "transcode", "preset": "copy", "loudnorm": True}, "re-encodes the sound"),
        ({"kind": "transcode", "storyboard": True}, "option of package jobs"),
        ({"kind": "trim", "end": 2.0, "chunk_seconds": 4.0}, "chunk_seconds is an option of package"),
        ({"kind": "package", "chunk_seconds": -1.0}, "chunk_seconds must be a number of seconds"),
        ({"kind": "package", "chunk_seconds": float("nan")}, "chunk_seconds must be a number of seconds"),
        ({"kind": "transcode", "progressive": True}, "progressive is an option of package"),
        (
            {"kind": "transcode", "chunk": ChunkSpan(index=0, start=0.0)},
            "chunk belongs to a package's rendition",
        ),
        (
            {
                "kind": "rendition",
                "parent_id": "p",
                "rendition": "720p",
                "chunk": ChunkSpan(index=-1, start=0.0),
            },
            "must not be negative",
        ),
        (
            {
                "kind": "rendition",
                "parent_id": "p",
                "rendition": "720p",
                "chunk": ChunkSpan(index=1, start=4.0, end=4.0),
            },
            "end must be after start",
        ),
    ],
)
def test_job_graph_rules(kw, msg):
    with pytest.raises(JobRequestError, match=msg):
        normalize_job(job(**kw))


def test_a_package_child_writes_in_its_package_folder():
    child = normalize_job(job(kind="rendition", job_id="p1-720p", parent_id="p1", rendition="720p"))
    assert child.output_key == "in/a/p1/720p.m3u8" and child.preset == "abr-h264"
