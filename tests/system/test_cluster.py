"""A real three-node JetStream cluster on loopback (what k8s runs): streams replicated three times;
killing the jobs stream's leader mid-flow loses nothing acknowledged and runs nothing twice."""

from __future__ import annotations

import asyncio
import uuid

import httpx
import nats
import pytest

from mpr_common import subjects as s
from mpr_devstack.servers import NatsCluster
from mpr_devstack.stack import DEV_API_TOKEN, Stack
from tests.system.conftest import FAST_RETRIES, wait_for, wait_job
from tests.system.faults import stream_events

pytestmark = pytest.mark.system


async def _stream_leader(url: str, stream: str) -> tuple[str, int]:
    nc = await nats.connect(url)
    try:
        info = await nc.jetstream().stream_info(stream)
        assert info.cluster is not None
        return info.cluster.leader or "", len(info.cluster.replicas or []) + 1
    finally:
        await nc.close()


def test_killing_the_stream_leader_loses_no_acknowledged_job_and_runs_none_twice(tmp_path_factory, media_dir):
    st = Stack(
        tmp_path_factory.mktemp("cluster"),
        transcoders=2,
        nats_nodes=3,
        # An in-flight job's progress acks pause during the election: its ack wait must outlast one (as
        # the default 30 s does), or the job is redelivered and runs again.
        extra_env={**FAST_RETRIES, "TRANSCODER_ACK_WAIT": "20", "NATS_STREAM_REPLICAS": "3"},
    )
    try:
        st.start()
        assert isinstance(st.nats, NatsCluster) and len(st.nats.nodes) == 3
        api = httpx.Client(
            base_url=st.api_url, headers={"Authorization": f"Bearer {DEV_API_TOKEN}"}, timeout=60
        )
        key = f"cluster-{uuid.uuid4().hex[:6]}/a.mp4"
        st.s3_client().upload_file(str(media_dir / "sample.mp4"), "mpr-media-in", key)

        def submit(job_id: str) -> None:
            body = {"kind": "thumbnail", "source_key": key, "job_id": job_id}
            # During an election the queue may not confirm (503): the same job_id is retried, never doubled.
            wait_for(
                lambda: api.post("/api/jobs", json=body).status_code in (200, 202),
                60,
                what=f"{job_id} stored",
            )

        before = [f"before-{i}-{uuid.uuid4().hex[:6]}" for i in range(6)]
        for job_id in before:
            submit(job_id)
        leader, replicas = asyncio.run(_stream_leader(st.nats.url, s.JOBS_STREAM))
        assert replicas == 3
        st.nats.node(leader).kill()  # kill -9 the leader with jobs in flight
        after = [f"after-{i}-{uuid.uuid4().hex[:6]}" for i in range(4)]
        for job_id in after:
            submit(job_id)
        new_leader, _ = asyncio.run(_stream_leader(st.nats.url, s.JOBS_STREAM))
        assert new_leader and new_leader != leader

        for job_id in before + after:
            job = wait_job(api, job_id, timeout=180)["job"]
            assert job["status"] == "completed" and job["attempts"] == 1, job  # run by one worker, once
        completed = [e["job_id"] for e in stream_events(st.nats.url, s.JOBS_STREAM, s.JOB_COMPLETED)]
        requested = [e["job_id"] for e in stream_events(st.nats.url, s.JOBS_STREAM, s.JOB_REQUESTED)]
        for job_id in before + after:
            assert requested.count(job_id) == 1, job_id  # stored once
            assert completed.count(job_id) == 1, job_id  # finished once
    finally:
        st.stop()
