"""CPU and wall seconds to start and stop one ``Stack(transcoders=2)``, with and without the launcher
(``MPR_PRELOAD``): ``uv run python libs/mpr_devstack/scripts/measure_zygote.py [runs]``.

Each mode runs in a fresh interpreter. CPU counts every process the stack started (reaped children of
this process: nats-server, and moto and the services when they are plain subprocesses) plus, with the
launcher, the launcher's own CPU and its reaped children's, read from /proc; this process's own CPU
(ensure_buckets, JetStream setup, readiness polls) is reported apart, the same work in both modes. The
launcher's imports are paid once: in its first stack, reported apart from the later ones."""

from __future__ import annotations

import json
import logging
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

TICK = os.sysconf("SC_CLK_TCK")


def _children_cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def _self_cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def _launcher_cpu() -> float:
    from mpr_devstack.zygote import client

    zygote = client._launcher
    if zygote is None or zygote.proc.poll() is not None:
        return 0.0
    fields = Path(f"/proc/{zygote.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
    return sum(int(x) for x in fields[11:15]) / TICK  # utime stime cutime cstime


def one_mode(runs: int) -> list[dict[str, float]]:
    from mpr_devstack.stack import Stack

    out = []
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(runs):
            cpu0, self0, launcher0, t0 = _children_cpu(), _self_cpu(), _launcher_cpu(), time.monotonic()
            st = Stack(Path(tmp) / f"stack-{i}", transcoders=2)
            try:
                st.start()
                started = time.monotonic() - t0
            finally:
                st.stop()
            wall = time.monotonic() - t0
            cpu = _children_cpu() - cpu0 + _launcher_cpu() - launcher0
            out.append({"cpu": cpu, "self_cpu": _self_cpu() - self0, "wall": wall, "start_wall": started})
    return out


def main() -> None:
    runs = int(sys.argv[1]) if len(sys.argv) > 1 else 3
    if os.environ.get("MEASURE_CHILD"):
        logging.basicConfig(level=logging.WARNING)
        print(json.dumps(one_mode(runs)))
        return
    for preload in ("0", "1"):
        n = runs + (1 if preload == "1" else 0)  # the launcher's first stack is reported apart
        env = {**os.environ, "MPR_PRELOAD": preload, "MEASURE_CHILD": "1"}
        done = subprocess.run([sys.executable, __file__, str(n)], env=env, capture_output=True, text=True)
        if done.returncode != 0 or "WARNING" in done.stderr:
            print(done.stderr[-3000:], file=sys.stderr)
        got = json.loads(
            subprocess.run(
                [sys.executable, __file__, str(n)], env=env, capture_output=True, check=True
            ).stdout
        )
        label = "MPR_PRELOAD=" + preload
        if preload == "1":
            first, got = got[0], got[1:]
            print(f"{label} first stack (launcher start and imports included): " + _fmt(first))
        for row in got:
            print(f"{label} run: " + _fmt(row))
        print(
            f"{label} median of {len(got)}: "
            + _fmt({k: statistics.median(r[k] for r in got) for k in got[0]})
        )


def _fmt(row: dict[str, float]) -> str:
    return (
        f"stack CPU {row['cpu']:.2f} s, this process {row['self_cpu']:.2f} s, "
        f"wall {row['wall']:.2f} s (ready after {row['start_wall']:.2f} s)"
    )


if __name__ == "__main__":
    main()
