"""The package chord releases its children a window at a time, exactly once and never stuck: the fan-out
publishes the first window (the sound and every rung's first chunk among them), each completion the
next; a transcoder that dies after a child completed but before it released leaves the release to the
child's redelivery, one that dies between claiming children and publishing them leaves it to the next
release; a cancelled package releases nothing more. An AV1 package's rungs, chunked or whole, are
played and listed at the end. The Packager on in-memory JetStream, KV and S3."""

from __future__ import annotations

from dataclasses import dataclass, field
from types import SimpleNamespace

import msgspec
import pytest
from nats.js.api import PubAck

from mpr_common import subjects as s
from mpr_common.codec import decode
from mpr_common.events import JobCompleted, JobPlayable, JobRequested, MediaInfo, Rendition
from mpr_common.jobs import normalize_job
from mpr_common.jobstate import JobLease, JobState
from mpr_common.outputs import OutputOwners
from mpr_transcoder.kinds.graph.releasing import ReleaseMark, mark_key
from mpr_transcoder.kinds.package.children import PackageStore
from mpr_transcoder.kinds.package.chord import Packager
from mpr_transcoder.kinds.package.releasing import lead
from tests.fakes import RevisionKV
from tests.unit.transcoder.test_manifests import video

HD = MediaInfo(duration=60.0, video_codec="h264", width=1280, height=720, audio_codec="aac")


class Crash(Exception):
    """The transcoder dies here."""


@dataclass
class FakeJetStream:
    """Stores once per Nats-Msg-Id, as the stream's de-duplication does; ``crash_after``: that many more
    publications go through, then the transcoder dies."""

    stored: list[tuple[str, JobRequested, str]] = field(default_factory=list)
    ids: set[str] = field(default_factory=set)
    attempts: int = 0
    crash_after: int | None = None
    waiting: int = 0  # pulls waiting on the class consumer

    async def publish(self, subject, payload, headers=None, timeout=None) -> PubAck:
        if self.crash_after is not None:
            if self.crash_after == 0:
                raise Crash
            self.crash_after -= 1
        self.attempts += 1
        msg_id = (headers or {}).get("Nats-Msg-Id", "")
        duplicate = msg_id in self.ids
        if subject.startswith(s.JOB_CHILD) and not duplicate:
            self.stored.append((subject, decode(payload, JobRequested), msg_id))
        self.ids.add(msg_id)
        return PubAck(stream=s.JOBS_STREAM, seq=len(self.stored), duplicate=duplicate)

    async def consumer_info(self, stream, durable):
        assert (stream, durable) == (s.JOBS_STREAM, s.transcoders_durable("normal"))
        return SimpleNamespace(num_waiting=self.waiting)

    def children(self) -> list[str]:
        return [child.job_id for _, child, _ in self.stored]


class FakeS3:
    """An empty output bucket: what a discard lists and deletes."""

    def get_paginator(self, _name):
        return SimpleNamespace(paginate=lambda **_: [{"Contents": []}])

    def delete_objects(self, **_):
        return {}

    def put_object(self, **_):
        return {}


@pytest.fixture
def packager() -> Packager:
    js = FakeJetStream()
    return Packager(
        js,  # type: ignore[arg-type]
        FakeS3(),  # type: ignore[arg-type]
        JobState(RevisionKV()),  # type: ignore[arg-type]
        PackageStore(RevisionKV()),  # type: ignore[arg-type]
        "out",
        "w1",
        owners=OutputOwners(RevisionKV()),  # type: ignore[arg-type]
        window=2,
    )


async def fan_out(p: Packager):
    package = normalize_job(JobRequested(job_id="p1", kind="package", source_key="s.mp4", chunk_seconds=12))
    return await p.fan_out(package, HD, attempt=1)


async def complete(p: Packager, child: JobRequested) -> None:
    """What the worker records before the chord runs: the child's completion, from its lease."""
    await p.job_state.completed(
        JobCompleted(job_id=child.job_id, output_key=child.output_key or "", output_bucket="out")
    )


async def start(p: Packager, *children: JobRequested) -> None:
    """A transcoder takes each child: its lease."""
    for child in children:
        assert (
            await JobLease(p.job_state, child.job_id, worker="w2", retry=0, seconds=60).acquire() == "taken"
        )


def js(p: Packager) -> FakeJetStream:
    return p.js  # type: ignore[return-value]


async def test_the_first_window_is_what_playing_needs_and_each_completion_releases_the_next(packager):
    p = packager
    plan = await fan_out(p)
    order = [c.job_id for c in plan.jobs]
    first = order[: lead(plan)]
    assert len(order) > 12 and len(first) == 4  # the sound and the first chunk of 720p, 480p, 360p
    assert first[0] == "p1-audio" and all(c.endswith("-c0000") for c in first[1:])
    assert js(p).children() == first  # more than the floor of 2: playing needs them all
    assert {subject for subject, _, _ in js(p).stored} == {s.child_subject("normal")}

    await start(p, *plan.jobs[:4])  # four slots took them
    await complete(p, plan.jobs[0])
    await p.child_completed(plan.jobs[0])
    assert js(p).children() == order[:6]  # three running, two queued (the floor) behind them
    await start(p, *plan.jobs[4:6])
    # three pulls waiting on the class (idle transcoders): the next completion fills them too
    js(p).waiting = 3
    await complete(p, plan.jobs[1])
    await p.child_completed(plan.jobs[1])
    assert js(p).children() == order[:9]
    js(p).waiting = 0
    for child in plan.jobs[2:-1]:  # the rest complete in order: each one releases the next
        await complete(p, child)
        await p.child_completed(child)
    assert js(p).children() == order  # every child, once, in the plan's order
    assert len(set(js(p).ids)) == len(js(p).ids)


async def test_a_transcoder_that_died_before_releasing_leaves_it_to_the_childs_redelivery(packager):
    p = packager
    plan = await fan_out(p)
    out = js(p).children()
    done = plan.jobs[0]
    await complete(p, done)  # recorded, then the transcoder dies before the chord ran: nothing released
    assert js(p).children() == out
    # The message was never acked: redelivered, the child finds itself completed and runs the chord
    # again (Attempt._ended), which releases what the dead transcoder did not.
    await p.child_completed(done)
    assert js(p).children() == [c.job_id for c in plan.jobs[: len(out) + 1]]
    await p.child_completed(done)  # and again, a second redelivery: nothing more
    assert len(js(p).children()) == len(out) + 1


async def test_a_transcoder_that_died_between_claim_and_publication_leaves_it_to_the_next_release(packager):
    p = packager
    plan = await fan_out(p)
    order = [c.job_id for c in plan.jobs]
    await start(p, *plan.jobs[1:4])
    js(p).waiting = 2  # two children to release at the next completion: one goes out, then it dies
    await complete(p, plan.jobs[0])
    js(p).crash_after = 1
    with pytest.raises(Crash):
        await p.child_completed(plan.jobs[0])
    entry = await p.store.kv.get(mark_key("p1"))
    mark = decode(entry.value, ReleaseMark)
    assert (mark.published, mark.upto) == (4, 6)  # claimed, not recorded as published
    assert js(p).children() == order[:5]
    js(p).crash_after, js(p).waiting = None, 0
    await complete(p, plan.jobs[1])  # the next completion publishes the claim first
    await p.child_completed(plan.jobs[1])
    assert js(p).children() == order[:6]
    assert decode((await p.store.kv.get(mark_key("p1"))).value, ReleaseMark).published == 6


async def test_a_cancelled_package_releases_nothing_more(packager):
    p = packager
    plan = await fan_out(p)
    out = js(p).children()
    await p.job_state.cancelled("p1")  # POST /api/jobs/p1/cancel
    for child in plan.jobs[:2]:
        await complete(p, child)
        assert await p.child_completed(child) is None
    assert js(p).children() == out


async def test_a_retried_package_releases_its_children_again_as_the_new_generation(packager):
    p = packager
    plan = await fan_out(p)
    await complete(p, plan.jobs[0])
    await p.child_completed(plan.jobs[0])
    await p.job_state.failed("p1")  # a child failed for good
    retried = normalize_job(
        JobRequested(job_id="p1", kind="package", source_key="s.mp4", chunk_seconds=12, retry=1)
    )
    before = len(js(p).stored)
    await p.job_state.retried("p1", 1)
    await p.fan_out(retried, HD, attempt=1)
    again = js(p).stored[before:]
    # the completed sound passes through (it ends at once on delivery); a window of the others follows
    assert [c.job_id for _, c, _ in again] == [c.job_id for c in plan.jobs[:5]]
    assert all(c.retry == 1 and msg_id.endswith(".r1") for _, c, msg_id in again)
    # a late completion of the first generation releases nothing for it
    await complete(p, plan.jobs[1])
    stale = plan.jobs[1]
    assert await p.releaser.release(plan, stale.retry) == 0


async def test_a_packages_children_weigh_one_in_all(packager):
    plan = await fan_out(packager)
    assert sum(c.weight for c in plan.jobs) == pytest.approx(1.0, abs=1e-4)
    weights = {c.rendition: c.weight for c in plan.children}
    assert 0 < weights["audio"] < 1


async def test_a_release_late_in_a_long_title_reads_a_windows_states_not_the_titles(packager):
    p = packager
    plan = await fan_out(p)
    for child in plan.jobs[:-6]:
        await complete(p, child)
        await p.child_completed(child)
    kv = p.job_state.kv
    reads = kv.reads
    reads.clear()
    await complete(p, plan.jobs[-6])
    assert await p.releaser.release(plan, 0, lead(plan)) == 1
    assert js(p).children() == [c.job_id for c in plan.jobs[:-1]]
    states = [r for r in reads if r != "p1"]  # (the package's own state, read once)
    assert 0 < len(states) <= lead(plan) + 2 < len(plan.jobs) - 6, states


async def test_a_completion_late_in_a_long_title_reads_the_unfinished_childrens_states_not_the_titles(
    packager,
):
    """Its fan-in reads the states of the children not yet known complete: over a title's life n reads a
    completion at most, not n per completion."""
    p = packager
    plan = await fan_out(p)
    for child in plan.jobs[:-6]:
        await complete(p, child)
        await p.child_completed(child)
    kv = p.job_state.kv
    reads = kv.reads
    reads.clear()
    last = plan.jobs[-6]
    await complete(p, last)
    await p.child_completed(last)
    children = {c.job_id for c in plan.jobs}
    fan_in = [r for r in reads if r in children]
    unfinished = {c.job_id for c in plan.jobs[-6:]}
    # The release reads at most its window's states; the fan-in only those of the six unfinished.
    assert set(fan_in) <= unfinished | {c.job_id for c in plan.jobs[-6 - lead(plan) - 2 :]}, fan_in
    assert len(fan_in) < len(plan.jobs) - 6, fan_in


async def test_a_discard_looks_only_for_what_some_generation_released(packager):
    """Children never released never ran and left nothing: a failed title's discard reads the owners
    of its released children only, across generations (a retry's window may reach less far)."""
    p = packager
    plan = await fan_out(p)
    first = js(p).children()
    assert 0 < len(first) < len(plan.jobs)  # a window, not the title
    owners = (await p.owners()).kv
    reads = owners.reads
    reads.clear()
    await p.job_state.failed("p1")
    await p.discard(plan)
    assert reads and len(reads) <= 2 * len(first) + 2, (len(reads), len(first))  # each child, the package
    assert [c.job_id for c in await p.releaser.released(plan)] == first


def rendition_of(child: JobRequested) -> Rendition:
    """What a video rung's child (a chunk: its segments only) reports: 4 s segments, numbered on."""
    name = child.rendition or ""
    span = child.chunk
    first, count = (
        (0, 15) if span is None else (span.first_segment, round(((span.end or 60.0) - span.start) / 4))
    )
    return video(
        name,
        360,
        400_000,
        "av01.0.05M.08" if name.startswith("av1") else "avc1.64001f",
        segments=[4.0] * count,
        start_number=first,
        init_digest=None if span is None else f"init-of-{name}",
    )


@pytest.mark.parametrize(("fps", "av1_chunked"), [(25.0, True), (30000 / 1001, False)])
async def test_a_chunked_av1_package_plays_and_ends_with_its_av1_rungs_chunked_or_whole(
    packager, fps, av1_chunked
):
    """At 25 fps the AV1 rungs are stitched from their chunks like the H.264 ones; at 30000/1001 fps they
    are whole children, the playable master waiting for none of them and the last one listing them."""
    written: dict[str, str] = {}
    packager.s3.put_object = lambda Key, Body, **_: written.__setitem__(Key, Body.decode())  # type: ignore[attr-defined]
    package = normalize_job(
        JobRequested(job_id="p1", kind="package", source_key="s.mp4", preset="abr-av1", chunk_seconds=12)
    )
    plan = packager.make_plan(package, msgspec.structs.replace(HD, audio_codec=None, fps=fps))
    av1 = {"av1-720p", "av1-360p"}
    assert (av1 <= set(plan.chunked_names)) == av1_chunked and plan.spans
    done: dict[str, JobCompleted] = {}
    for child in sorted(plan.jobs, key=lambda c: c.chunk is None):  # the whole rungs (no sound) last
        done[child.job_id] = JobCompleted(
            job_id=child.job_id,
            output_key=child.output_key or "",
            output_bucket="out",
            rendition=rendition_of(child),
        )
        if child.chunk is not None and child.chunk.index == 0 and child.rendition == plan.chunked_names[-1]:
            await packager.grow(plan, done, 0)  # every rung's first chunk is up: playable
            master = written.pop("s/p1/master.m3u8")
            assert ("av1-720p.m3u8" in master) == av1_chunked, master  # a whole rung joins once complete
            assert "#EXT-X-PLAYLIST-TYPE:EVENT" in written["s/p1/720p.m3u8"]
    completed = await packager.complete(plan, done)
    master = written["s/p1/master.m3u8"]
    for name in ("av1-720p", "av1-360p", "720p", "360p"):
        assert f"{name}.m3u8" in master and f"s/p1/{name}.m3u8" in completed.output_keys
        # a chunked rung's playlist is the package's to write; a whole rung's is its child's
        assert (f"s/p1/{name}.m3u8" in written) == (name in plan.chunked_names)
    stitched = written["s/p1/av1-720p.m3u8" if av1_chunked else "s/p1/720p.m3u8"]
    assert stitched.count(".m4s") == 15 and stitched.rstrip().endswith("#EXT-X-ENDLIST")
    assert 'codecs="av01.0.05M.08"' in written["s/p1/manifest.mpd"]


async def test_a_progressive_package_whose_sound_ends_last_is_announced_playable_before_it_completes(
    packager,
):
    """A short title's sound may finish after every chunk: the completion that ends the package is also
    the one that makes it playable, and ``job.playable`` still goes out, once, before ``job.completed``."""
    p = packager
    sent: list[tuple[str, bytes]] = []
    publish = p.js.publish

    async def recording(subject, payload, headers=None, timeout=None):
        sent.append((subject, payload))
        return await publish(subject, payload, headers, timeout)

    p.js.publish = recording  # type: ignore[method-assign]
    p.s3.put_object = lambda **_: None  # type: ignore[attr-defined]
    plan = await fan_out(p)
    sound = next(c for c in plan.jobs if c.rendition == "audio")
    order = [c for c in plan.jobs if c is not sound] + [sound]
    for child in order:
        rendition = rendition_of(child)
        if child is sound:
            rendition = msgspec.structs.replace(
                rendition, type="audio", codecs="mp4a.40.2", width=None, height=None, init_digest=None
            )
        await p.job_state.completed(
            JobCompleted(
                job_id=child.job_id,
                output_key=child.output_key or "",
                output_bucket="out",
                rendition=rendition,
            )
        )
        await p.child_completed(child)
    assert isinstance(await p.job_state.get("p1"), JobCompleted)
    ends = [subject for subject, _ in sent if subject in (s.JOB_PLAYABLE, s.JOB_COMPLETED)]
    assert ends == [s.JOB_PLAYABLE, s.JOB_COMPLETED]
    playable = decode(next(body for subject, body in sent if subject == s.JOB_PLAYABLE), JobPlayable)
    assert playable.job_id == "p1" and playable.output_key.endswith("master.m3u8")
    await p.child_completed(sound)  # a redelivery of the last completion: nothing is sent again
    assert [subject for subject, _ in sent].count(s.JOB_PLAYABLE) == 1
