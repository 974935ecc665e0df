"""The work dir: each job works in ``<workdir>/job-<id>-<random>/`` and holds an exclusive flock on its
``.lock`` file while it runs; the kernel drops the lock when the process ends, also on kill -9, so that
:func:`clean_workdir` removes what a killed worker left and never a running job's files."""

from __future__ import annotations

import fcntl
import os
import shutil
import time
from pathlib import Path


def free_space(path: str | Path) -> int:
    return shutil.disk_usage(path).free


LOCK_FILE = ".lock"


def lock(job_dir: Path) -> int:
    fd = os.open(job_dir / LOCK_FILE, os.O_CREAT | os.O_RDWR | os.O_CLOEXEC, 0o600)
    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    return fd


def clean_workdir(workdir: str | Path, older_than: float = 60.0) -> list[Path]:
    """Remove the ``job-*`` dirs under ``workdir`` that no running job holds (left by a worker that was
    killed) and that are older than ``older_than`` seconds; returns them. Safe while other workers use
    the same dir: a running job's lock is never free."""
    root = Path(workdir)
    if not root.is_dir():
        return []
    cutoff = time.time() - older_than
    removed = []
    for d in sorted(root.glob("job-*")):
        try:
            if d.is_symlink() or not d.is_dir() or d.stat().st_mtime > cutoff:
                continue
            fd: int | None = os.open(d / LOCK_FILE, os.O_RDONLY | os.O_CLOEXEC)
        except FileNotFoundError:  # no lock (yet, or any more): stale once it is old enough
            fd = None
        except OSError:
            continue
        try:
            if fd is not None:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            shutil.rmtree(d, ignore_errors=True)
            removed.append(d)
        except BlockingIOError:  # a running job
            continue
        finally:
            if fd is not None:
                os.close(fd)
    return removed
