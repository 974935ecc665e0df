"""The README's `make dev` command (mpr-dev): starts everything, prints the API URL, serves the
flow, and Ctrl-C stops every process it started."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from mpr_devstack.servers import free_port
from mpr_devstack.stack import DEV_API_TOKEN

pytestmark = pytest.mark.system


def children_of(pid: int) -> set[int]:
    out = subprocess.run(["ps", "-o", "pid=", "--ppid", str(pid)], capture_output=True, text=True).stdout
    return {int(p) for p in out.split()}


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    stat = Path(f"/proc/{pid}/stat")
    return stat.exists() and stat.read_text().split()[2] != "Z"


def test_mpr_dev_starts_everything_and_ctrl_c_stops_it(tmp_path):
    ports = [free_port() for _ in range(3)]
    proc = subprocess.Popen(
        [
            str(Path(sys.executable).parent / "mpr-dev"),
            "--workdir",
            str(tmp_path / "dev"),
            "--api-port",
            str(ports[0]),
            "--nats-port",
            str(ports[1]),
            "--s3-port",
            str(ports[2]),
            "--transcoders",
            "1",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    lines: list[str] = []
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            line = proc.stdout.readline()
            assert line, "mpr-dev exited: " + "".join(lines)
            lines.append(line)
            if "Ctrl-C stops everything" in line:
                break
        text = "".join(lines)
        api_url = re.search(r"API\s+(http://127\.0\.0\.1:\d+)", text).group(1)
        assert api_url == f"http://127.0.0.1:{ports[0]}" and DEV_API_TOKEN in text
        r = httpx.post(
            f"{api_url}/api/assets/scan", headers={"Authorization": f"Bearer {DEV_API_TOKEN}"}, timeout=30
        )
        assert r.status_code == 200 and r.json()["found"] == 0  # buckets exist, empty
        started = children_of(proc.pid)
        assert len(started) >= 6  # nats-server, moto, catalog, scanner, transcoder, api
    finally:
        proc.send_signal(signal.SIGINT)  # Ctrl-C
        rc = proc.wait(60)
    assert rc == 0
    time.sleep(0.5)
    assert not [p for p in started if alive(p)], "processes left running after Ctrl-C"
    assert (tmp_path / "dev" / "catalog.db").exists() and (tmp_path / "dev" / "jetstream").is_dir()
