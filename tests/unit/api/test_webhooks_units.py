"""Webhooks' pure parts: the Standard Webhooks signature (as a receiver verifies it), the CloudEvent
built for an event, the retry schedule, the filters, and a delivery's state after each attempt."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json

import msgspec
import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from mpr_api.settings import ApiSettings
from mpr_api.webhooks.backoff import next_delay, retry_after, retry_delay, verdict
from mpr_api.webhooks.cloudevents import (
    asset_occurrence,
    cloud_event,
    delivery_id,
    job_occurrence,
    read_job_event,
)
from mpr_api.webhooks.engine import DeliveryPolicy, after_attempt
from mpr_api.webhooks.model import Attempt, Delivery, Occurrence, Subscription, matches
from mpr_api.webhooks.sender import Outcome
from mpr_api.webhooks.signing import InvalidSignature, new_secret, signature, signed_headers, verify
from mpr_common import subjects as s
from mpr_common.codec import encode
from mpr_common.events import (
    AssetRegistered,
    JobCancel,
    JobCompleted,
    JobFailed,
    JobRequested,
    JobView,
    MediaInfo,
)

# --- signing --------------------------------------------------------------------------------------


def test_the_signature_is_standard_webhooks_hmac_over_id_timestamp_and_body():
    secret = "whsec_" + base64.b64encode(b"k" * 32).decode()
    body = b'{"a":1}'
    expected = base64.b64encode(hmac.new(b"k" * 32, b"msg1.1700000000." + body, hashlib.sha256).digest())
    assert signature(secret, "msg1", 1700000000, body) == "v1," + expected.decode()


def test_a_receiver_accepts_the_exact_request_and_nothing_else():
    secret = new_secret()
    body = b'{"specversion":"1.0"}'
    headers = signed_headers([secret], "id-1", 1_000_000, body)
    assert verify(secret, headers, body, now=1_000_010) == "id-1"
    assert verify(secret, {k.upper(): v for k, v in headers.items()}, body, now=1_000_000) == "id-1"
    with pytest.raises(InvalidSignature, match="no signature"):
        verify(secret, headers, body + b" ", now=1_000_000)  # body changed
    with pytest.raises(InvalidSignature, match="no signature"):
        verify(secret, {**headers, "webhook-id": "id-2"}, body, now=1_000_000)  # id changed
    with pytest.raises(InvalidSignature, match="no signature"):
        verify(new_secret(), headers, body, now=1_000_000)  # another secret
    with pytest.raises(InvalidSignature, match="no signature"):  # a timestamp moved into the window
        verify(secret, {**headers, "webhook-timestamp": "1000005"}, body, now=1_000_000)
    with pytest.raises(InvalidSignature, match="missing"):
        verify(secret, {"webhook-id": "id-1"}, body, now=1_000_000)


def test_an_old_request_is_refused_as_a_replay():
    secret = new_secret()
    headers = signed_headers([secret], "id-1", 1_000_000, b"x")
    assert verify(secret, headers, b"x", tolerance=300, now=1_000_300)
    with pytest.raises(InvalidSignature, match="tolerance"):
        verify(secret, headers, b"x", tolerance=300, now=1_000_301)
    with pytest.raises(InvalidSignature, match="tolerance"):
        verify(secret, headers, b"x", tolerance=300, now=999_699)  # from the future too


def test_while_rotating_both_secrets_sign_and_either_verifies():
    old, new = new_secret(), new_secret()
    headers = signed_headers([new, old], "id", 5, b"b")
    assert len(headers["webhook-signature"].split()) == 2
    assert verify(old, headers, b"b", now=5) and verify(new, headers, b"b", now=5)
    sub = Subscription(
        id="a" * 32, url="https://x", types=["job.completed"], created_at=0, secret=new,
        previous_secret=old, previous_secret_until=100.0,
    )  # fmt: skip
    assert sub.signing_secrets(now=99) == [new, old]
    assert sub.signing_secrets(now=100) == [new]


# --- CloudEvents ------------------------------------------------------------------------------------
def view(**kw) -> JobView:
    fields = dict(
        id="j1", kind="thumbnail", status="completed", source_key="in/a.mp4", created_at=1, updated_at=2
    )
    return JobView(**{**fields, **kw})


async def lookup_of(found: JobView | None):
    seen = []

    async def lookup(job_id, seq):
        seen.append((job_id, seq))
        return found

    return lookup, seen


async def test_a_completed_job_becomes_a_cloudevent_with_the_catalogs_kind_and_source():
    ev = JobCompleted(
        job_id="j1", output_key="out/a.jpg", output_bucket="b-out", at=1700000000.25, log="x" * 9
    )
    type_, event = read_job_event(s.JOB_COMPLETED, encode(ev))
    lookup, seen = await lookup_of(view(source_bucket="b-in"))
    occ = await job_occurrence(type_, event, "completed-j1", 42, lookup)
    assert seen == [("j1", 42)]  # read once the catalog has the stream up to this event
    assert occ is not None and (occ.type, occ.kind, occ.key, occ.seq) == (
        "job.completed",
        "thumbnail",
        "in/a.mp4",
        42,
    )
    body = json.loads(cloud_event(occ, "d" * 32))
    assert body == {
        "specversion": "1.0",
        "id": "d" * 32,
        "source": "/mpr/jobs",
        "type": "io.mpr.job.completed",
        "subject": "j1",
        "time": "2023-11-14T22:13:20.250Z",
        "datacontenttype": "application/json",
        "data": body["data"],
    }
    data = body["data"]
    assert (
        data["output_key"] == "out/a.jpg" and data["kind"] == "thumbnail" and data["source_bucket"] == "b-in"
    )
    assert "log" not in data and "v" not in data  # FFmpeg's log is not sent


async def test_job_requests_of_any_queue_class_are_queued_events_without_a_lookup():
    lookup, seen = await lookup_of(None)
    req = JobRequested(kind="audio", source_key="a/b.wav", priority="urgent", requested_at=5.0)
    type_, event = read_job_event(s.requested_subject("urgent"), encode(req))
    occ = await job_occurrence(type_, event, "mine-1", 7, lookup)
    assert occ is not None and occ.type == "job.queued" and occ.subject == "mine-1"  # id from Nats-Msg-Id
    assert (occ.kind, occ.key, occ.time) == ("audio", "a/b.wav", 5.0) and seen == []


async def test_a_cancellation_is_one_fact_whether_read_from_the_request_or_the_workers_report():
    lookup, _ = await lookup_of(view(status="cancelled", retries=0))
    t1, cancel = read_job_event(s.JOB_CANCEL, encode(JobCancel(job_id="j1")))
    t2, failed = read_job_event(s.JOB_FAILED, encode(JobFailed(job_id="j1", error="x", reason="cancelled")))
    a = await job_occurrence(t1, cancel, "cancel-j1", 3, lookup)
    b = await job_occurrence(t2, failed, "failed-j1", 9, lookup)
    assert a is not None and b is not None and a.type == b.type == "job.cancelled"
    assert delivery_id("s" * 32, a.fact) == delivery_id("s" * 32, b.fact)
    assert delivery_id("t" * 32, a.fact) != delivery_id("s" * 32, a.fact)  # per subscription
    # A cancel that did not take (the job had completed first) is no event at all.
    lookup, _ = await lookup_of(view(status="completed"))
    assert await job_occurrence(t1, cancel, "cancel-j1", 3, lookup) is None


async def test_a_failure_is_not_a_cancellation_and_each_failure_is_its_own_fact():
    lookup, _ = await lookup_of(view(status="failed"))
    t, failed = read_job_event(s.JOB_FAILED, encode(JobFailed(job_id="j1", error="boom", reason="ffmpeg")))
    a = await job_occurrence(t, failed, "failed-j1", 3, lookup)
    b = await job_occurrence(t, failed, "failed-j1-r1", 30, lookup)  # after a retry
    assert a is not None and b is not None and a.type == "job.failed" and a.fact != b.fact


def test_a_registered_asset_is_its_key_and_metadata():
    ev = AssetRegistered(asset_id="a" * 32, bucket="in", key="v/a.mp4", etag="e", info=MediaInfo(width=640))
    occ = asset_occurrence(encode(ev), 5)
    body = json.loads(cloud_event(occ, "x"))
    assert body["type"] == "io.mpr.asset.registered" and body["subject"] == "v/a.mp4"
    assert body["source"] == "/mpr/assets" and body["data"]["info"] == {"width": 640}


# --- filters ----------------------------------------------------------------------------------------
def occurrence(**kw) -> Occurrence:
    fields = dict(
        type="job.completed", fact="f", subject="j", source="/mpr/jobs", time=1.0, data={},
        stream=s.JOBS_STREAM, seq=10, kind="thumbnail", key="in/a.mp4",
    )  # fmt: skip
    return Occurrence(**{**fields, **kw})


def subscription(**kw) -> Subscription:
    fields = dict(
        id="a" * 32, url="https://r.example/h", types=["job.completed"], created_at=0.0, secret="whsec_"
    )
    return Subscription(**{**fields, **kw})


@pytest.mark.parametrize(
    ("sub", "occ", "wanted"),
    [
        ({}, {}, True),
        ({}, {"type": "job.failed"}, False),
        ({"kinds": ["thumbnail", "audio"]}, {}, True),
        ({"kinds": ["audio"]}, {}, False),
        ({"kinds": ["audio"]}, {"kind": None}, False),  # a job the catalog does not know
        ({"key_prefix": "in/"}, {}, True),
        ({"key_prefix": "in/b"}, {}, False),
        ({"key_prefix": "in/"}, {"key": None}, False),
        ({"active": False}, {}, False),
        ({"start_seqs": {s.JOBS_STREAM: 10}}, {}, False),  # stored before the subscription was made
        ({"start_seqs": {s.JOBS_STREAM: 9}}, {}, True),
        ({"start_seqs": {s.ASSETS_STREAM: 99}}, {}, True),  # another stream's start
    ],
)
def test_filters(sub, occ, wanted):
    assert matches(subscription(**sub), occurrence(**occ)) is wanted


# --- retries ----------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("status", "expected"),
    [(200, "delivered"), (204, "delivered"), (None, "retry"), (408, "retry"), (429, "retry"), (500, "retry"),
     (503, "retry"), (400, "final"), (401, "final"), (404, "final"), (410, "final"), (301, "final"), (100, "final")],
)  # fmt: skip
def test_which_answers_are_retried(status, expected):
    assert verdict(status) == expected


def test_the_backoff_doubles_up_to_its_cap_with_half_of_it_random():
    schedule = [retry_delay(n, base=30, cap=600, rand=lambda: 1.0) for n in range(1, 8)]
    assert schedule == [30, 60, 120, 240, 480, 600, 600]
    assert [retry_delay(n, 30, 600, rand=lambda: 0.0) for n in (1, 2, 6)] == [15, 30, 300]


def test_retry_after_is_honoured_as_seconds_or_a_date_but_not_beyond_the_cap():
    now = 1_700_000_000.0
    assert (
        retry_after("120", now) == 120 and retry_after(None, now) is None and retry_after("soon", now) is None
    )
    assert retry_after("Tue, 14 Nov 2023 22:15:20 GMT", now) == 120.0
    half = lambda: 0.0  # noqa: E731
    assert next_delay(1, "120", base=10, cap=3600, now=now, rand=half) == 120  # asked for longer
    assert next_delay(1, "1", base=10, cap=3600, now=now, rand=half) == 5  # asked for shorter: backoff
    assert next_delay(1, "999999", base=10, cap=3600, now=now, rand=half) == 3600


POLICY = DeliveryPolicy.of(
    ApiSettings(webhook_max_attempts=3, webhook_retry_base=10, webhook_retry_max=100, webhook_timeout=5)
)


def task(**kw) -> Delivery:
    fields = dict(id="d" * 32, subscription_id="a" * 32, type="job.completed", subject="j",
                  event=msgspec.Raw(b"{}"), created_at=1.0, updated_at=1.0)  # fmt: skip
    return Delivery(**{**fields, **kw})


def outcome(status, **kw) -> Outcome:
    return Outcome(attempt=Attempt(at=2.0, status_code=status, error=None if status == 200 else "x"), **kw)


def test_a_delivery_retries_until_its_last_attempt_then_is_dead():
    d = task()
    d = after_attempt(d, outcome(500), now=100.0, policy=POLICY, rand=lambda: 1.0)
    assert (d.state, d.attempt, d.not_before) == ("retrying", 2, 110.0)
    d = after_attempt(d, outcome(None, retry_after="50"), now=200.0, policy=POLICY, rand=lambda: 1.0)
    assert (d.state, d.attempt, d.not_before) == ("retrying", 3, 250.0)  # Retry-After beyond backoff
    d = after_attempt(d, outcome(503), now=300.0, policy=POLICY)
    assert (d.state, len(d.attempts)) == ("dead", 3)


def test_a_final_answer_or_a_refused_address_is_dead_at_once_and_2xx_is_delivered():
    assert after_attempt(task(), outcome(400), 1.0, POLICY).state == "dead"
    assert after_attempt(task(), outcome(None, refused=True), 1.0, POLICY).state == "dead"
    done = after_attempt(task(attempt=2), outcome(200), 1.0, POLICY)
    assert (done.state, done.not_before) == ("delivered", 0.0)


def test_the_timeout_stays_well_within_the_tasks_ack_wait():
    assert DeliveryPolicy.of(ApiSettings(webhook_timeout=300)).timeout == 30.0


@given(st.text() | st.text(st.characters(categories=["Nd", "No"]), min_size=1))
@example("²")
def test_any_retry_after_header_is_read_or_ignored_never_raises(value):
    delay = retry_after(value, 1_700_000_000.0)
    assert delay is None or isinstance(delay, float)
