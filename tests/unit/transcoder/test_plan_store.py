"""A graph's plan as every event of the graph reads it: decoded once per KV revision and kept (with the
children it derived once), never served stale after the plan was deleted or made again."""

from __future__ import annotations

import asyncio

from mpr_common.codec import encode
from mpr_common.events import JobRequested, MediaInfo
from mpr_common.jobs import normalize_job
from mpr_transcoder.kinds.graph.store import PlanStore
from mpr_transcoder.kinds.transcode.graph import TranscodePlan, plan_transcode
from tests.fakes import RevisionKV


def transcode(job_id: str) -> JobRequested:
    return normalize_job(JobRequested(job_id=job_id, kind="transcode", source_key="in/film.mp4"))


INFO = MediaInfo(duration=120.0, video_codec="h264", width=1280, height=720, audio_codec="aac", streams=2)


def test_a_plan_is_decoded_once_per_revision_and_never_served_stale():
    async def go() -> None:
        kv = RevisionKV()
        store = PlanStore(kv, TranscodePlan, kept=2)  # type: ignore[arg-type]
        plan = plan_transcode(transcode("t1"), INFO)
        assert await store.create(plan) is plan
        first = await store.get("t1")
        assert first is not None and first.jobs == plan.jobs
        assert await store.get("t1") is first  # same revision: the decoded plan, its children made once
        child = first.jobs[3]
        assert first.child(child.job_id) == child and first.child("nope") is None

        await kv.delete("t1")
        assert await store.get("t1") is None  # deleted: not served from memory
        again = plan_transcode(transcode("t1"), INFO)
        await kv.create("t1", encode(again))
        made_again = await store.get("t1")
        assert made_again is not None and made_again is not first and made_again.nonce == again.nonce

        for other in ("t2", "t3"):  # at most `kept` plans in memory: the oldest goes
            await store.create(plan_transcode(transcode(other), INFO))
            await store.get(other)
        assert list(store._kept) == ["t2", "t3"]

    asyncio.run(go())
