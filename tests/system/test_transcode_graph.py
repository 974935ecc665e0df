"""A chunked transcode's fan-in, exactly once: the transcoder's TranscodeGraph on moto's S3 with
in-memory KV buckets and real FFmpeg on small parts. The last child's completion joins the parts into
the transcode's output key (the same bytes when a run that died before recording it joined already)
and completes it; a redelivery of that child (or of any other) joins nothing again and publishes no
second completion; the parts and their claims go. A cancelled
transcode's parts go too, and its completed children are marked to run again on a retry."""

from __future__ import annotations

import asyncio
import subprocess
from pathlib import Path

import msgspec
import pytest

from mpr_common import storage
from mpr_common import subjects as s
from mpr_common.codec import decode
from mpr_common.events import JobCompleted, JobRequested
from mpr_common.jobs import normalize_job
from mpr_common.jobstate import JobState
from mpr_common.mediainfo import probe
from mpr_common.outputs import OutputOwners
from mpr_common.presets import PRESETS
from mpr_transcoder.ffmpeg.argv import input_args
from mpr_transcoder.kinds.single_output import build_plan
from mpr_transcoder.kinds.transcode.graph import TranscodeGraph, TranscodePlan, TranscodeStore
from mpr_transcoder.kinds.transcode.parts import video_chunk_args
from mpr_transcoder.limits import Limits
from tests import moto_s3
from tests.fakes import FakeJetStream
from tests.media import make_video
from tests.system.test_package_cleanup import RevisionKV

pytestmark = pytest.mark.system

s3_settings = moto_s3.s3_settings  # the module's S3 server (a fixture)
SECONDS, RATE = 8, 10


@pytest.fixture
def graph(s3_settings, tmp_path) -> TranscodeGraph:
    return TranscodeGraph(
        FakeJetStream(),
        storage.get_s3_client(s3_settings),
        JobState(RevisionKV()),
        TranscodeStore(RevisionKV()),
        s3_settings.bucket_out,
        "w1",
        OutputOwners(RevisionKV()),
        workdir=tmp_path / "work",
        limits=Limits(),
    )


async def run(args: list[str]) -> str:
    """A command of the parts on a local source (its input by file, its progress on nothing); its
    output."""
    args = [a if a != "http,https,tcp,tls,crypto" else "file" for a in args]
    if "-progress" in args:
        i = args.index("-progress")
        args = args[:i] + args[i + 2 :]
    done = await asyncio.to_thread(subprocess.run, args, check=True, capture_output=True, text=True)
    return done.stdout


async def written_parts(g: TranscodeGraph, job_id: str, tmp: Path) -> TranscodePlan:
    """A chunked transcode fanned out, each child's part encoded, uploaded and claimed, and every child
    recorded completed."""
    source = make_video(tmp / "film.mp4", seconds=SECONDS, size="320x180", rate=RATE)
    info = await probe(str(source), protocols="file")
    job = normalize_job(
        JobRequested(job_id=job_id, kind="transcode", source_key="in/film.mp4", chunk_seconds=2)
    )
    plan = await g.fan_out(job, info, attempt=1)
    assert len(plan.spans) == 4 and plan.sound
    owners = await g.owners()
    preset = PRESETS[job.preset or ""]
    for child in plan.jobs:
        if child.chunk is not None:
            c = child.chunk
            out = tmp / f"{child.job_id}.mp4"
            await run(video_chunk_args(input_args(str(source), c.start, end=c.end), preset, out, 10**9))
        else:
            alone = msgspec.structs.replace(child, kind="audio")
            sound = build_plan(alone, preset, str(source), info, tmp / child.job_id, 10**9)
            out = sound.main_output
            await run(sound.args)
        assert child.output_key is not None
        assert await owners.claim(g.bucket_out, child.output_key, child.job_id) is None
        g.s3.upload_file(str(out), g.bucket_out, child.output_key)
        await g.job_state.completed(
            JobCompleted(job_id=child.job_id, output_key=child.output_key, output_bucket=g.bucket_out)
        )
    return plan


def keys(g: TranscodeGraph, prefix: str) -> set[str]:
    found = g.s3.list_objects_v2(Bucket=g.bucket_out, Prefix=prefix).get("Contents", [])
    return {o["Key"] for o in found}


def completions(g: TranscodeGraph) -> list[JobCompleted]:
    js = g.js
    assert isinstance(js, FakeJetStream)
    return [decode(p, JobCompleted) for sub, p, _ in js.published if sub == s.JOB_COMPLETED]


async def test_the_last_child_joins_once_and_a_redelivery_joins_nothing_again(graph, tmp_path):
    g = graph
    plan = await written_parts(g, "tc1", tmp_path)
    last = plan.jobs[-1]
    # An earlier run joined and uploaded, then died before the completion was recorded.
    parts = {c.job_id: await g.job_state.get(c.job_id) for c in plan.jobs}
    crashed = await g.complete(plan, {k: v for k, v in parts.items() if isinstance(v, JobCompleted)})
    first = g.s3.head_object(Bucket=g.bucket_out, Key=crashed.output_key)
    done = await g.child_completed(last)  # its redelivery joins again: the same bytes
    assert done is not None and done.job_id == "tc1" and done.output_key == plan.transcode.output_key
    assert done.output_keys == [done.output_key] and done.output_size > 0
    assert isinstance(await g.job_state.get("tc1"), JobCompleted)
    assert [c.job_id for c in completions(g)] == ["tc1"]
    assert keys(g, plan.parts_prefix) == set()  # the parts went, and their claims
    owners = await g.owners()
    for child in plan.jobs:
        assert child.output_key is not None
        assert await owners.owner(g.bucket_out, child.output_key) is None
    head = g.s3.head_object(Bucket=g.bucket_out, Key=done.output_key)
    assert head["ContentLength"] == done.output_size and head["ETag"] == first["ETag"]

    # The last child redelivered, and another child's late report: the same completion, nothing more.
    for child in (last, plan.jobs[0]):
        assert await g.child_completed(child) == done
    assert [c.job_id for c in completions(g)] == ["tc1"]
    again = g.s3.head_object(Bucket=g.bucket_out, Key=done.output_key)
    assert again["ETag"] == head["ETag"]

    # the join's output: every source frame once
    out = tmp_path / "joined.mp4"
    g.s3.download_file(g.bucket_out, done.output_key, str(out))
    count = await run(
        ["ffprobe", "-v", "error", "-count_packets", "-select_streams", "v:0"]
        + ["-show_entries", "stream=nb_read_packets", "-of", "csv=p=0", str(out)]
    )
    assert int(count.strip()) == SECONDS * RATE


async def test_a_cancelled_transcode_leaves_no_part_and_its_children_run_again_on_a_retry(graph, tmp_path):
    g = graph
    plan = await written_parts(g, "tc2", tmp_path)
    await g.job_state.cancelled("tc2")  # POST /api/jobs/tc2/cancel
    assert await g.child_completed(plan.jobs[-1]) is None
    assert keys(g, plan.parts_prefix) == set()
    assert plan.transcode.output_key not in keys(g, "")  # never joined
    for child in plan.jobs:  # their parts went: a retry of the transcode runs them again
        assert await g.job_state.get(child.job_id) == "failed"
    assert completions(g) == []
