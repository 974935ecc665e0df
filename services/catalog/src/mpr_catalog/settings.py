from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path

from mpr_common.settings import ServiceSettings, env

# ffprobes per core: a probe mostly waits on S3 (connect, a few range requests), little on the CPU (about
# 90 ms for a small file, nearly all of it ffprobe's start), so several per core keep both busy.
PROBES_PER_CORE = 4
MIN_PROBE_CONCURRENCY = 4
# Each ffprobe holds tens of MB: a pod on a large node is bounded by its CPU quota, and then by this.
MAX_PROBE_CONCURRENCY = 64
_CGROUP_V2 = Path("/sys/fs/cgroup/cpu.max")
_CGROUP_V1 = (Path("/sys/fs/cgroup/cpu/cpu.cfs_quota_us"), Path("/sys/fs/cgroup/cpu/cpu.cfs_period_us"))


def cpu_quota(v2: Path = _CGROUP_V2, v1: tuple[Path, Path] = _CGROUP_V1) -> float | None:
    """Cores this container may use by its cgroup CPU quota (a Kubernetes CPU limit), None without one."""
    try:
        quota, period = v2.read_text().split()[:2]
        return None if quota == "max" else int(quota) / int(period)
    except (OSError, ValueError):
        pass
    try:
        q, p = int(v1[0].read_text()), int(v1[1].read_text())
        return q / p if q > 0 and p > 0 else None
    except (OSError, ValueError):
        return None


def usable_cores() -> int:
    """The cores this process may run on: its CPU affinity (a cpuset), bounded by its cgroup CPU quota
    (rounded up), at least 1."""
    try:
        cores = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cores = os.cpu_count() or 1
    quota = cpu_quota()
    if quota is not None:
        cores = min(cores, math.ceil(quota))
    return max(1, cores)


def default_probe_concurrency() -> int:
    """ffprobes at once when ``CATALOG_PROBE_CONCURRENCY`` is unset: 4 per usable core, 4 to 64."""
    return min(MAX_PROBE_CONCURRENCY, max(MIN_PROBE_CONCURRENCY, PROBES_PER_CORE * usable_cores()))


@dataclass(frozen=True, slots=True)
class CatalogSettings(ServiceSettings):
    database_url: str = env("DATABASE_URL", default="sqlite+aiosqlite:///.mpr/catalog.db")
    # upgrade the schema at start-up (Alembic; serialised by an advisory lock on PostgreSQL)
    migrate: bool = env("CATALOG_MIGRATE", default=True)
    # ffprobes at once; unset: default_probe_concurrency() (4 per usable core, 4 to 64)
    probe_concurrency: int = env("CATALOG_PROBE_CONCURRENCY", factory=default_probe_concurrency)
    probe_timeout: float = env("CATALOG_PROBE_TIMEOUT", default=60.0)
    # ffprobe's CPU priority (nice): probing yields to listing and ingestion on a busy machine
    probe_nice: int = env("CATALOG_PROBE_NICE", default=10)
