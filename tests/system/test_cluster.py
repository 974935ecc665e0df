"""A real three-node JetStream cluster on loopback (what k8s runs): streams replicated three times;
killing a stream's leader mid-flow loses nothing acknowledged and runs nothing twice. The ack wait (4 s)
is shorter than an election, so jobs are redelivered while they run: what keeps them from running twice
is the lease each run holds in the job-state bucket, not timing. (Rounds of bench/leader_kill.py; the
20-round loop is `make bench-leader-kill`.)"""

from __future__ import annotations

import pytest

from bench.leader_kill import JOB_STATE_STREAM, api_client, leader, one_round, start_stack, upload_source
from mpr_common import subjects as s

pytestmark = pytest.mark.system


def test_killing_the_stream_leader_loses_no_acknowledged_job_and_runs_none_twice(tmp_path_factory, media_dir):
    st = start_stack(tmp_path_factory.mktemp("cluster"))
    try:
        with api_client(st) as api:
            key = upload_source(st, media_dir / "sample.mp4")
            # The jobs stream's leader, then the job-state bucket's (where the leases are).
            for target in (s.JOBS_STREAM, JOB_STATE_STREAM):
                assert len(leader(st, target)[1]) == 2  # replicated three times
                result = one_round(st, api, key, target)
                assert result.jobs and not result.lost, result  # every acknowledged job completed
                assert not result.duplicates, result  # each started by one run
                assert not result.completions, result  # and completed once
    finally:
        st.stop()
