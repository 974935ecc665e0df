"""scripts/bootstrap.sh waits for another apt's lock instead of failing at once: apt-get install with
DPkg::Lock::Timeout (apt waits for the dpkg lock itself), apt-get update retried while its only error
is the lists lock (apt 2.6 does not wait for that one). A fake apt-get on PATH stands in for apt, so
no test touches the machine's packages or holds its locks."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[3] / "scripts" / "bootstrap.sh"

LOCKED = (
    "E: Could not get lock /var/lib/apt/lists/lock. It is held by process 4242 (apt-get)\n"
    "E: Unable to lock directory /var/lib/apt/lists/\n"
)


def fake_apt(tmp_path: Path, *, locked_times: int, other_error: str = "") -> Path:
    """An apt-get that logs its arguments, answers 'locked' ``locked_times`` times, then succeeds
    (or fails with ``other_error``)."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (tmp_path / "count").write_text("0")
    apt = bin_dir / "apt-get"
    apt.write_text(
        f"""#!/usr/bin/env bash
echo "$*" >> {tmp_path}/calls
n=$(cat {tmp_path}/count); echo $((n + 1)) > {tmp_path}/count
if [ "$n" -lt {locked_times} ]; then printf '%s' {LOCKED!r} >&2; exit 100; fi
if [ -n {other_error!r} ]; then echo {other_error!r} >&2; exit 100; fi
exit 0
"""
    )
    apt.chmod(0o755)
    return bin_dir


def run(tmp_path: Path, bin_dir: Path, call: str, **env: str) -> subprocess.CompletedProcess:
    """Sources the script (which then runs nothing by itself) and calls one of its functions."""
    return subprocess.run(
        ["bash", "-c", f"set -euo pipefail; source {SCRIPT}; {call}"],
        env={**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}", "MPR_APT_LOCK_RETRY": "0.05", **env},
        capture_output=True,
        text=True,
        timeout=60,
    )


def calls(tmp_path: Path) -> list[str]:
    return (tmp_path / "calls").read_text().splitlines()


def test_update_waits_while_another_apt_holds_the_lists_lock(tmp_path):
    bin_dir = fake_apt(tmp_path, locked_times=3)
    r = run(tmp_path, bin_dir, "apt_update")
    assert r.returncode == 0, r.stderr
    assert calls(tmp_path) == ["-o DPkg::Lock::Timeout=600 update -qq"] * 4
    assert r.stderr.count("another apt holds its lock; waiting for it (up to 600 s)") == 1
    assert "Could not get lock" not in r.stderr  # a lock that was waited for is no error


def test_update_gives_up_after_the_timeout_with_apts_error(tmp_path):
    bin_dir = fake_apt(tmp_path, locked_times=1000)
    r = run(tmp_path, bin_dir, "apt_update", MPR_APT_LOCK_TIMEOUT="0")
    assert r.returncode != 0
    assert "Could not get lock /var/lib/apt/lists/lock" in r.stderr
    assert calls(tmp_path) == ["-o DPkg::Lock::Timeout=0 update -qq"]


def test_update_fails_at_once_on_any_other_error(tmp_path):
    bin_dir = fake_apt(tmp_path, locked_times=0, other_error="E: The repository is not signed.")
    r = run(tmp_path, bin_dir, "apt_update")
    assert r.returncode != 0 and "not signed" in r.stderr
    assert len(calls(tmp_path)) == 1


@pytest.mark.parametrize("timeout", [None, "30"])
def test_install_asks_apt_to_wait_for_the_dpkg_lock(tmp_path, timeout):
    bin_dir = fake_apt(tmp_path, locked_times=0)
    env = {"MPR_APT_LOCK_TIMEOUT": timeout} if timeout else {}
    r = run(tmp_path, bin_dir, "apt_install ffmpeg postgresql", **env)
    assert r.returncode == 0, r.stderr
    assert calls(tmp_path) == [
        f"-o DPkg::Lock::Timeout={timeout or 600} install -y -qq --no-install-recommends ffmpeg postgresql"
    ]


def test_every_apt_get_in_the_script_goes_through_the_waiting_functions():
    lines = [
        ln.strip()
        for ln in SCRIPT.read_text().splitlines()
        if "apt-get" in ln and not ln.strip().startswith("#")
    ]
    assert lines and all("DPkg::Lock::Timeout" in ln for ln in lines), lines


def test_sourcing_the_script_runs_nothing(tmp_path):
    bin_dir = fake_apt(tmp_path, locked_times=0)
    r = run(tmp_path, bin_dir, "true")
    assert r.returncode == 0 and r.stdout == "" and not (tmp_path / "calls").exists()
