"""The rule engine against a real nats-server (streams, KV buckets and the ``rules`` consumer made by
the setup code): a matching registration starts one job from the template, once per (rule, bucket, key,
etag) whatever the redeliveries, replicas or crashes between the claim and the publish."""

from __future__ import annotations

import asyncio
import time

import msgspec
import nats
import pytest

from mpr_api.automation.engine import REPUBLISH_WINDOW, RuleEngine
from mpr_api.automation.rules import Condition, Firing, Rule, firing_id, rule_job_id
from mpr_api.automation.store import FiringStore, RuleStore, TemplateStore
from mpr_api.automation.templates import Template
from mpr_api.settings import ApiSettings
from mpr_common import subjects as s
from mpr_common.bus import BatchConsumer
from mpr_common.codec import decode, encode
from mpr_common.events import AssetRegistered, JobRequested, MediaInfo
from mpr_common.outputs import OutputOwners
from mpr_common.settings import JobQueueSettings, NatsSettings
from mpr_common.streams import setup_jetstream
from mpr_devstack.servers import NatsServer

pytestmark = pytest.mark.system

SETTINGS = ApiSettings()
BUCKET = SETTINGS.s3.bucket_in
HD = MediaInfo(format_name="mov,mp4", duration=12.0, video_codec="h264", width=640, height=360, streams=2)
SMALL = MediaInfo(format_name="matroska,webm", duration=6.0, video_codec="h264", width=320, height=240)
TALL = Condition(field="height", op=">=", value=360)


@pytest.fixture(scope="module")
def nats_url(tmp_path_factory):
    server = NatsServer(tmp_path_factory.mktemp("js")).start()
    yield server.url
    server.stop()


@pytest.fixture
async def js(nats_url):
    """Fresh streams and buckets for each test, as mpr-setup makes them."""
    nc = await nats.connect(nats_url)
    js = nc.jetstream()
    for bucket in (s.TEMPLATES_KV, s.RULES_KV, s.RULE_FIRINGS_KV, s.OUTPUT_OWNERS_KV):
        try:
            await js.delete_key_value(bucket)
        except Exception:
            pass
    for stream in (s.ASSETS_STREAM, s.JOBS_STREAM):
        try:
            await js.delete_stream(stream)
        except Exception:
            pass
    await setup_jetstream(js, NatsSettings(url=nats_url), JobQueueSettings())
    yield js
    await nc.close()


def engine(js) -> RuleEngine:
    """One API replica's engine (each has its own caches, as separate processes do)."""
    rules, templates = RuleStore(js), TemplateStore(js)
    return RuleEngine(SETTINGS, js, rules, templates, FiringStore(js), OutputOwners(None))


async def owners(js) -> OutputOwners:
    return OutputOwners(await js.key_value(s.OUTPUT_OWNERS_KV))


async def make_engine(js) -> RuleEngine:
    e = engine(js)
    e.owners = await owners(js)
    return e


def asset(
    key: str, info: MediaInfo | None = HD, etag: str = "e1", error: str | None = None
) -> AssetRegistered:
    return AssetRegistered(
        asset_id="a-" + key, bucket=BUCKET, key=key, etag=etag, size=1000, info=info, probe_error=error
    )


async def requested(js) -> list[tuple[str, JobRequested, dict]]:
    """Every job request stored in the jobs stream: (subject, request, headers)."""
    info = await js.stream_info(s.JOBS_STREAM)
    out = []
    for seq in range(max(1, info.state.first_seq), info.state.last_seq + 1):
        msg = await js.get_msg(s.JOBS_STREAM, seq)
        if msg.subject.startswith(s.JOB_REQUESTED):
            out.append((msg.subject, decode(msg.data, JobRequested), msg.headers or {}))
    return out


async def seed(js, *, template: Template | None = None, **rule) -> None:
    await TemplateStore(js).put("thumbs", template or Template(kind="thumbnail", preset="png-640", start=1.0))
    await RuleStore(js).put("r1", Rule(template="thumbs", prefix="auto/", conditions=[TALL], **rule))


async def test_a_matching_registration_starts_one_job_from_the_template(js):
    await seed(js)
    e = await make_engine(js)
    assert await e.on_registered(asset("auto/hd.mp4")) == {"r1": "started"}
    assert await e.on_registered(asset("auto/small.mkv", SMALL)) == {}  # height 240 < 360
    assert await e.on_registered(asset("manual/hd.mp4")) == {}  # outside the prefix
    [(subject, job, headers)] = await requested(js)
    job_id = rule_job_id("r1", BUCKET, "auto/hd.mp4", "e1")
    assert subject == s.JOB_REQUESTED and headers["Nats-Msg-Id"] == job.job_id == job_id
    assert (job.kind, job.preset, job.start, job.source_key) == ("thumbnail", "png-640", 1.0, "auto/hd.mp4")
    assert (job.rule, job.requested_by) == ("r1", "rule:r1")
    assert job.template is not None and job.template.startswith("thumbs@")
    firing = await FiringStore(js).get(firing_id("r1", BUCKET, "auto/hd.mp4", "e1"))
    assert firing is not None and (firing.state, firing.job_id) == ("started", job_id)


async def test_again_on_the_same_version_starts_nothing_but_a_new_etag_does(js):
    await seed(js)
    e = await make_engine(js)
    assert await e.on_registered(asset("auto/a.mp4")) == {"r1": "started"}
    assert await e.on_registered(asset("auto/a.mp4")) == {"r1": "duplicate"}  # redelivered or re-published
    assert await (await make_engine(js)).on_registered(asset("auto/a.mp4")) == {"r1": "duplicate"}
    assert await e.on_registered(asset("auto/a.mp4", etag="e2")) == {"r1": "started"}  # a new version
    assert len(await requested(js)) == 2


async def test_replicas_racing_on_one_registration_start_one_job(js):
    await seed(js)
    replicas = [await make_engine(js) for _ in range(4)]
    outcomes = await asyncio.gather(*(r.on_registered(asset("auto/race.mp4")) for r in replicas))
    assert sorted(o["r1"] for o in outcomes) == ["duplicate"] * 3 + ["started"]
    assert len(await requested(js)) == 1


async def test_a_claim_whose_publish_was_never_recorded_is_published_again_once(js):
    """A replica died between its claim and its publish (or its record of the publish)."""
    await seed(js)
    e = await make_engine(js)
    key = "auto/crash.mp4"
    fid, job_id = firing_id("r1", BUCKET, key, "e1"), rule_job_id("r1", BUCKET, key, "e1")
    claim = Firing(rule="r1", bucket=BUCKET, key=key, etag="e1", job_id=job_id, at=time.time())
    await FiringStore(js).claim(fid, claim)
    assert await e.on_registered(asset(key)) == {"r1": "started"}
    assert await e.on_registered(asset(key)) == {"r1": "duplicate"}
    assert [j.job_id for _, j, _ in await requested(js)] == [job_id]
    # one published twice (the first publish got through, its record did not) is still one job
    fid2 = firing_id("r1", BUCKET, key, "e2")
    stale = msgspec.structs.replace(claim, etag="e2", job_id=rule_job_id("r1", BUCKET, key, "e2"))
    await FiringStore(js).claim(fid2, stale)
    await e.on_registered(asset(key, etag="e2"))
    await FiringStore(js).store.put(fid2, stale)  # as if the record was lost again
    await e.on_registered(asset(key, etag="e2"))
    assert len(await requested(js)) == 2  # the jobs stream dropped the second copy (Nats-Msg-Id)


async def test_a_claim_older_than_the_duplicate_window_is_not_published_again(js):
    await seed(js)
    key = "auto/old.mp4"
    old = Firing(
        rule="r1",
        bucket=BUCKET,
        key=key,
        etag="e1",
        job_id=rule_job_id("r1", BUCKET, key, "e1"),
        at=time.time() - REPUBLISH_WINDOW - 1,
    )
    await FiringStore(js).claim(firing_id("r1", BUCKET, key, "e1"), old)
    assert await (await make_engine(js)).on_registered(asset(key)) == {"r1": "duplicate"}
    assert await requested(js) == []


async def test_what_a_template_cannot_make_is_refused_once_and_recorded(js):
    # .mkv sources give .mkv output keys, which a thumbnail preset does not write
    await seed(js, template=Template(kind="thumbnail", preset="png-640", output_key="{path}{ext}"))
    await RuleStore(js).put("r1", Rule(template="thumbs", prefix="auto/"))
    e = await make_engine(js)
    assert await e.on_registered(asset("auto/x.mkv", SMALL)) == {"r1": "refused"}
    assert await e.on_registered(asset("auto/x.mkv", SMALL)) == {"r1": "duplicate"}
    firing = await FiringStore(js).get(firing_id("r1", BUCKET, "auto/x.mkv", "e1"))
    assert firing is not None and firing.state == "refused" and ".png" in (firing.error or "")
    assert await requested(js) == []


async def test_an_output_another_job_owns_is_refused(js):
    fixed = Template(kind="thumbnail", preset="png-640", output_key="thumbs/{stem}.png")  # no {job_id}
    await seed(js, template=fixed)
    await RuleStore(js).put("r2", Rule(template="thumbs", prefix="auto/"))
    e = await make_engine(js)
    outcomes = await e.on_registered(asset("auto/same.mp4"))
    assert sorted(outcomes.values()) == ["refused", "started"]
    refused = next(r for r, o in outcomes.items() if o == "refused")
    firing = await FiringStore(js).get(firing_id(refused, BUCKET, "auto/same.mp4", "e1"))
    assert firing is not None and "belongs to job" in (firing.error or "")
    assert len(await requested(js)) == 1


async def test_a_missing_template_claims_nothing(js):
    await RuleStore(js).put("r1", Rule(template="gone", prefix="auto/"))
    e = await make_engine(js)
    assert await e.on_registered(asset("auto/a.mp4")) == {"r1": "template_missing"}
    assert await FiringStore(js).get(firing_id("r1", BUCKET, "auto/a.mp4", "e1")) is None


async def test_probe_errors_disabled_rules_pinned_revisions_and_priority(js):
    templates, rules = TemplateStore(js), RuleStore(js)
    first, _ = await templates.put("thumbs", Template(kind="thumbnail", preset="png-640", start=1.0))
    await templates.put("thumbs", Template(kind="thumbnail", preset="jpeg-320", start=2.0))
    await rules.put(
        "pinned", Rule(template="thumbs", template_revision=first, prefix="p/", priority="urgent")
    )
    await rules.put("off", Rule(template="thumbs", prefix="p/", enabled=False))
    await rules.put("tall", Rule(template="thumbs", prefix="p/", conditions=[TALL]))
    e = await make_engine(js)
    # ffprobe could not read it: the rule with a metadata condition does not match, the others do
    assert await e.on_registered(asset("p/broken.mp4", None, error="invalid data")) == {"pinned": "started"}
    [(subject, job, _)] = await requested(js)
    assert subject == s.requested_subject("urgent") and job.priority == "urgent"
    assert (job.preset, job.start, job.template) == ("png-640", 1.0, f"thumbs@{first}")


async def test_the_rules_consumer_feeds_the_engine(js, nats_url):
    """Registrations published by the catalog reach the engine through the durable consumer made by the
    setup code, which starts at new registrations: made on a stream with history, it skips it."""
    await js.delete_consumer(s.ASSETS_STREAM, s.RULES_DURABLE)
    before = asset("auto/before.mp4")
    await js.publish(s.asset_subject(BUCKET, before.key), encode(before), stream=s.ASSETS_STREAM)
    await setup_jetstream(js, NatsSettings(url=nats_url), JobQueueSettings())  # idempotent; re-creates it
    assert (await js.consumer_info(s.ASSETS_STREAM, s.RULES_DURABLE)).num_pending == 0
    await seed(js)
    e = await make_engine(js)
    consumer = BatchConsumer(js, s.ASSETS_STREAM, s.RULES_DURABLE, e.handle, batch=10)
    consumer.start()
    try:
        await js.publish(s.asset_subject(BUCKET, "x/garbage"), b"{not json", stream=s.ASSETS_STREAM)
        for key in ("auto/one.mp4", "auto/two.mp4"):
            await js.publish(s.asset_subject(BUCKET, key), encode(asset(key)), stream=s.ASSETS_STREAM)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:  # until every message is settled
            info = await js.consumer_info(s.ASSETS_STREAM, s.RULES_DURABLE)
            if info.num_ack_pending == 0 and info.num_pending == 0 and info.delivered.stream_seq >= 4:
                break
            await asyncio.sleep(0.05)
    finally:
        await consumer.stop()
    assert sorted(j.source_key for _, j, _ in await requested(js)) == ["auto/one.mp4", "auto/two.mp4"]
    assert info.num_ack_pending == 0 and info.num_pending == 0  # the garbage was acked, not redelivered
