"""The whole system with PostgreSQL (the production database) instead of SQLite."""

from __future__ import annotations

import uuid

import httpx
import pytest

from mpr_devstack.stack import DEV_API_TOKEN, Stack
from tests.media import probe
from tests.system.conftest import FAST_RETRIES, wait_for, wait_job

pytestmark = pytest.mark.system


def test_flow_on_postgres(postgres, media_dir, tmp_path_factory):
    url = postgres.create_db(f"stack{uuid.uuid4().hex[:8]}")
    st = Stack(
        tmp_path_factory.mktemp("pgstack"), transcoders=1, extra_env={**FAST_RETRIES, "DATABASE_URL": url}
    )
    try:
        st.start()
        api = httpx.Client(
            base_url=st.api_url, headers={"Authorization": f"Bearer {DEV_API_TOKEN}"}, timeout=60
        )
        st.s3_client().upload_file(str(media_dir / "sample.mp4"), "mpr-media-in", "pg/a.mp4")
        scan = api.post("/api/assets/scan", json={"prefix": "pg/"}).json()
        assert (scan["found"], scan["registered"]) == (1, 1)
        asset = wait_for(
            lambda: (
                (a := api.get("/api/assets", params={"prefix": "pg/"}).json()["items"])
                and a[0]["probe_status"] == "ok"
                and a[0]
            ),
            what="probe",
        )
        assert asset["info"]["duration"] == pytest.approx(12.0, abs=0.1)
        job = api.post(
            "/api/jobs",
            json={"kind": "trim", "source_key": "pg/a.mp4", "start": 1, "end": 4, "preset": "h264-480p"},
        ).json()["job"]
        done = wait_job(api, job["id"])
        assert done["job"]["status"] == "completed"
        assert float(probe(done["output_url"])["format"]["duration"]) == pytest.approx(3.0, abs=0.15)
    finally:
        st.stop()
