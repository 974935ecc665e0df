"""Crafted media and hostile keys: rejected or failed with a clear reason, no local file read."""

from __future__ import annotations

import asyncio
import errno
import os
import threading
import time
import uuid
from pathlib import Path

import nats
import pytest

from mpr_common import subjects as s
from mpr_common.codec import encode
from mpr_common.events import JobRequested
from tests.system.conftest import wait_for, wait_job

pytestmark = pytest.mark.system


class FifoCanary:
    """A named pipe: opening it for writing succeeds only while some process has it open for reading,
    so a watcher thread sees any attempt to read the 'local file' a crafted input points at."""

    def __init__(self, path: Path) -> None:
        self.path = path
        os.mkfifo(path)
        self.opened = False
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)
        self._thread.start()

    def _watch(self) -> None:
        while not self._stop.is_set():
            try:
                fd = os.open(self.path, os.O_WRONLY | os.O_NONBLOCK)
            except OSError as exc:
                if exc.errno != errno.ENXIO:
                    raise
            else:
                self.opened = True
                os.close(fd)
            time.sleep(0.005)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()


@pytest.fixture
def canary(tmp_path):
    c = FifoCanary(tmp_path / "secret.ts")
    yield c
    c.stop()


def crafted(kind: str, target: Path) -> bytes:
    if kind == "hls":
        return (
            f"#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:10\n#EXTINF:10.0,\nfile://{target}\n"
            f"#EXTINF:10.0,\n{target}\n#EXT-X-ENDLIST\n"
        ).encode()
    if kind == "concat":
        return f"ffconcat version 1.0\nfile '{target}'\nfile 'file:{target}'\n".encode()
    raise ValueError(kind)


@pytest.mark.parametrize(
    "kind,name",
    [("hls", "playlist.mp4"), ("hls", "clip.mkv"), ("concat", "list.mkv"), ("concat", "list.mp4")],
)
def test_crafted_playlists_fail_without_reading_local_files(api, s3, canary, kind, name):
    key = f"evil-{uuid.uuid4().hex[:6]}/{name}"
    s3.put_object(Bucket="mpr-media-in", Key=key, Body=crafted(kind, canary.path))
    r = api.post("/api/jobs", json={"kind": "transcode", "source_key": key})
    assert r.status_code == 202, r.text
    job = wait_job(api, r.json()["job"]["id"])["job"]
    assert job["status"] == "failed" and job["failure_reason"] == "source", job
    assert "not readable media" in job["error"]
    # The catalog's ffprobe refuses it too.
    scan = api.post("/api/assets/scan", json={"prefix": key.split("/")[0] + "/"}).json()
    assert scan["files"] == [key]
    asset = wait_for(
        lambda: next(
            (
                a
                for a in api.get("/api/assets", params={"prefix": key}).json()["items"]
                if a["probe_status"] != "pending"
            ),
            None,
        ),
        what="probe",
    )
    assert asset["probe_status"] == "error" and asset["probe_error"]
    time.sleep(0.2)
    assert not canary.opened, "a local file was opened"


@pytest.mark.parametrize(
    "key",
    [
        "-i.mp4",
        "x/-filter_complex.mp4",
        "concat:a.mp4|b.mp4",
        "file:/etc/passwd.mp4",
        "../../etc/passwd.mp4",
        "a/../../b.mp4",
        "/etc/x.mp4",
        "a\x00b.mp4",
        "a\nb.mp4",
        "subtitles.srt",
    ],
)
def test_hostile_keys_are_400_at_the_api(api, key):
    for body in (
        {"kind": "transcode", "source_key": key},
        {"kind": "transcode", "source_key": "ok.mp4", "output_key": key},
    ):
        r = api.post("/api/jobs", json=body)
        assert r.status_code == 400, (key, r.text)
        assert r.json()["detail"]


def publish_jobs(stack, jobs: list[JobRequested]) -> None:
    """As another bus client would, with each job's id as its Nats-Msg-Id."""

    async def publish():
        nc = await nats.connect(stack.nats.url)
        try:
            for j in jobs:
                await nc.jetstream().publish(s.JOB_REQUESTED, encode(j), headers={"Nats-Msg-Id": j.job_id})
        finally:
            await nc.close()

    asyncio.run(publish())


def test_hostile_keys_published_straight_to_nats_fail_with_reason(stack, api):
    jobs = [
        JobRequested(job_id=uuid.uuid4().hex, kind="transcode", source_key=k)
        for k in ("-i.mp4", "concat:a.mp4|b.mp4", "../x.mp4")
    ]

    publish_jobs(stack, jobs)
    for j in jobs:
        job = wait_job(api, j.job_id)["job"]
        assert (
            job["status"] == "failed" and job["failure_reason"] == "invalid" and "source_key" in job["error"]
        )
        assert job["attempts"] == 1


def test_hostile_media_paths_are_400(api):
    for path in ("/media/in/..%2F..%2Fetc%2Fpasswd.mp4", "/media/out/-i.mp4", "/media/in/concat:a.mp4"):
        r = api.get(path, follow_redirects=False)
        assert r.status_code in (400, 404), (path, r.status_code)


def test_jobs_published_straight_to_nats_cannot_name_other_buckets(stack, api, s3, media_dir):
    """Another bus client names buckets the API never would: a private source, or the in bucket as the
    output (which would overwrite a source). The transcoder refuses both; nothing is read or written."""
    key = f"buckets-{uuid.uuid4().hex[:6]}/a.mp4"
    s3.upload_file(str(media_dir / "sample.mp4"), "mpr-media-in", key)
    s3.create_bucket(Bucket="private-bucket")
    s3.upload_file(str(media_dir / "sample.mp4"), "private-bucket", key)
    before = s3.head_object(Bucket="mpr-media-in", Key=key)["ETag"]
    jobs = [
        JobRequested(
            job_id=uuid.uuid4().hex, kind="thumbnail", source_key=key, source_bucket="private-bucket"
        ),
        JobRequested(
            job_id=uuid.uuid4().hex,
            kind="audio",
            source_key=key,
            output_bucket="mpr-media-in",
            output_key=key,
        ),
    ]

    publish_jobs(stack, jobs)
    reasons = [wait_job(api, j.job_id)["job"] for j in jobs]
    assert all(j["status"] == "failed" and j["failure_reason"] == "invalid" for j in reasons), reasons
    assert "not one jobs may read" in reasons[0]["error"] and "never overwrite" in reasons[1]["error"]
    assert s3.head_object(Bucket="mpr-media-in", Key=key)["ETag"] == before
    assert s3.list_objects_v2(Bucket="mpr-media-out", Prefix=key.split("/")[0]).get("KeyCount", 0) == 0


def test_a_job_cannot_overwrite_another_jobs_output(stack, api, s3, media_dir):
    key = f"owned-{uuid.uuid4().hex[:6]}/a.mp4"
    s3.upload_file(str(media_dir / "sample.mp4"), "mpr-media-in", key)
    out = f"{key.split('/')[0]}/thumb.jpg"
    first = api.post("/api/jobs", json={"kind": "thumbnail", "source_key": key, "output_key": out}).json()[
        "job"
    ]
    assert wait_job(api, first["id"])["job"]["status"] == "completed"
    before = s3.head_object(Bucket="mpr-media-out", Key=out)["ETag"]
    # Through the API: 409. Straight onto NATS: the transcoder refuses it.
    r = api.post("/api/jobs", json={"kind": "thumbnail", "source_key": key, "output_key": out, "start": 1})
    assert r.status_code == 409 and first["id"] in r.json()["detail"]
    intruder = JobRequested(
        job_id=uuid.uuid4().hex, kind="thumbnail", source_key=key, output_key=out, start=1
    )
    publish_jobs(stack, [intruder])
    job = wait_job(api, intruder.job_id)["job"]
    assert job["status"] == "failed" and job["failure_reason"] == "invalid" and first["id"] in job["error"]
    assert s3.head_object(Bucket="mpr-media-out", Key=out)["ETag"] == before
