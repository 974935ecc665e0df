"""The catalog probes a large upload several objects at a time, as wide as the machine allows: every
object of a scan is probed, with more ffprobes side by side than the old fixed two. Behaviour, not speed
(bench/probes.py measures the rate)."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from mpr_catalog.settings import default_probe_concurrency
from tests.media import ffmpeg
from tests.system.conftest import wait_for

pytestmark = pytest.mark.system
N = 40


def ffprobe_children(ppid: int) -> int:
    """The live ffprobes among ``ppid``'s children, read from its threads' lists of children (not a
    scan of every process on the machine: sampled every few ms, that scan was what cost CPU)."""
    pids: set[str] = set()  # a set: a list read while children come and go may repeat one
    for tasks in Path(f"/proc/{ppid}/task").glob("*/children"):
        try:
            pids.update(tasks.read_text().split())
        except OSError:
            continue
    count = 0
    for pid in pids:
        try:
            text = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            continue
        name = text[text.index("(") + 1 : text.rindex(")")]
        state, parent = text[text.rindex(")") + 2 :].split()[:2]
        if name == "ffprobe" and int(parent) == ppid and state not in "ZX":
            count += 1
    return count


class PeakSampler:
    """The most ffprobes the catalog ran at once, sampled from /proc every few ms."""

    def __init__(self, pid: int) -> None:
        self.pid, self.peak = pid, 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, ffprobe_children(self.pid))
            time.sleep(0.005)

    def stop(self) -> int:
        self._stop.set()
        self._thread.join(5)
        return self.peak


def test_a_large_upload_is_probed_several_objects_at_a_time(stack, api, s3, tmp_path):
    src = tmp_path / "small.mp4"
    ffmpeg("-f", "lavfi", "-i", "testsrc=size=160x120:rate=10:duration=1", "-c:v", "libx264", str(src))
    body = src.read_bytes()
    keys = [f"width/{i:03d}.mp4" for i in range(N)]
    for k in keys:
        s3.put_object(Bucket=stack.bucket_in, Key=k, Body=body)

    sampler = PeakSampler(stack.services["catalog"].popen.pid)
    try:
        assert api.post("/api/assets/scan", json={"prefix": "width/"}).status_code == 200

        def probed() -> list[dict] | None:
            items = api.get("/api/assets", params={"prefix": "width/", "limit": 100}).json()["items"]
            done = [a for a in items if a["probe_status"] != "pending"]
            return items if len(items) == N and len(done) == N else None

        items = wait_for(probed, 300, 0.5, f"the catalog to probe {N} objects")
    finally:
        peak = sampler.stop()
    assert {a["probe_status"] for a in items} == {"ok"}, [a for a in items if a["probe_status"] != "ok"][:3]
    assert default_probe_concurrency() >= 4
    # More side by side than the old fixed 2, never more than the catalog's width.
    assert 2 < peak <= default_probe_concurrency(), peak
