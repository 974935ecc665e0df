"""A long title does not hold its queue class (the release window, mpr_transcoder.kinds.graph.release_window):
on one transcoder with one slot, a chunked package of many chunks is submitted, then a short transcode of
the same class; the transcode runs after a window of the package's children, not after all of them. Read
from the order of the events (which child completed before the transcode did), not from timings."""

from __future__ import annotations

import uuid

import httpx
import pytest

from mpr_common.jobs import CHUNK_SUFFIX
from mpr_common.presets import DEFAULT_PRESET, PRESETS
from mpr_devstack.stack import DEV_API_TOKEN
from tests.media import make_video
from tests.system.conftest import wait_for, wait_job
from tests.system.test_event_stream import events

pytestmark = pytest.mark.system

SEGMENT = PRESETS[DEFAULT_PRESET["package"]].hls_segment_seconds or 0  # 4 s
# Six chunks against a window of two: released all at once, every one of them would run before the
# short job (six ahead of it); released a window at a time, at most three do.
SECONDS = 24
CHUNKS = SECONDS // int(SEGMENT)  # one segment a chunk: six chunks of one rung (the ladder's lowest)
WINDOW = 2


def test_a_short_job_runs_before_the_last_chunks_of_a_long_title_of_its_class(make_stack, tmp_path):
    st = make_stack(transcoders=1, TRANSCODER_CONCURRENCY="1", TRANSCODER_RELEASE_WINDOW=str(WINDOW))
    s3 = st.s3_client()
    folder = f"fair-{uuid.uuid4().hex[:6]}"
    title = make_video(tmp_path / "title.mp4", seconds=SECONDS, size="320x180", rate=5)
    clip = make_video(tmp_path / "clip.mp4", seconds=2, size="320x180", rate=5)
    s3.upload_file(str(title), "mpr-media-in", f"{folder}/title.mp4")
    s3.upload_file(str(clip), "mpr-media-in", f"{folder}/clip.mp4")
    package, short = f"pk{uuid.uuid4().hex[:8]}", f"tc{uuid.uuid4().hex[:8]}"
    chunks = [f"{package}-360p{CHUNK_SUFFIX.format(index=i)}" for i in range(CHUNKS)]

    with httpx.Client(
        base_url=st.api_url, headers={"Authorization": f"Bearer {DEV_API_TOKEN}"}, timeout=60
    ) as api:
        with api.stream("GET", "/api/events", params={"job_id": [package, short]}, timeout=60) as r:
            assert r.status_code == 200
            body = {"kind": "package", "source_key": f"{folder}/title.mp4", "job_id": package}
            submitted = api.post("/api/jobs", json={**body, "chunk_seconds": SEGMENT})
            assert submitted.status_code == 202, submitted.text
            # planned and its first children queued: the short job comes behind them in the stream
            wait_for(
                lambda: api.get(f"/api/jobs/{package}").json()["job"]["status"] == "running",
                120,
                what="the package to be planned",
            )
            queued = api.post(
                "/api/jobs",
                json={"kind": "transcode", "source_key": f"{folder}/clip.mp4", "job_id": short},
            )
            assert queued.status_code == 202, queued.text
            seen = events(  # (the stream of a package carries its children's events)
                r.iter_lines(),
                lambda e: e["data"]["job_id"] == package and e["event"] in {"job.completed", "job.failed"},
                timeout=300,
            )
        done = wait_job(api, package, timeout=60)["job"]
        assert done["status"] == "completed", done
        assert sorted(done["children"]) == sorted([f"{package}-audio", *chunks])
        assert wait_job(api, short, timeout=60)["job"]["status"] == "completed"

    # The events in the jobs stream's order: T queued behind what the package had released then.
    order = [(e["event"], e["data"]["job_id"]) for e in seen]
    completed = [job for event, job in order if event == "job.completed"]
    assert short in completed and set(chunks) <= set(completed), order
    queued_at = order.index(("job.queued", short))
    ran_at = order.index(("job.completed", short))
    # Ahead of it only the package's window: the child running then and those queued (the window, at
    # most, once the first release is out), never the title's remaining chunks.
    ahead = [job for event, job in order[queued_at:ran_at] if event == "job.completed" and job in chunks]
    assert len(ahead) <= WINDOW + 1, order
    assert completed.index(short) < completed.index(chunks[-1]) < completed.index(package)
