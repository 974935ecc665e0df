"""Fill pytest's cache of rewritten test modules once, before the test processes start.

pytest rewrites the asserts of every test module it imports and keeps the result next to it
(``__pycache__/*-pytest-*.pyc``). On a fresh checkout that cache is empty, and the four processes of
``make test`` all rewrite the same 160 modules at the same moment: about 6 CPU-s each, 25 CPU-s in all,
on two cores. The controller writes the cache once instead, in two processes, before it starts them.

This uses pytest's own rewriter (``_pytest.assertion.rewrite``, not a public API: the version is pinned
in uv.lock). Whatever goes wrong here only costs the saving: each test process rewrites what it does
not find, as it always does.
"""

from __future__ import annotations

import multiprocessing
import sys
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import pytest

PROCESSES = 2  # the cores of the machine `make test` is sized for


def test_modules(config: pytest.Config) -> list[Path]:
    """The modules pytest rewrites: test files and conftests under the paths it was given (the
    configured test paths when none)."""
    patterns = [*config.getini("python_files"), "conftest.py"]
    found: set[Path] = set()
    for arg in config.args:
        path = (config.invocation_params.dir / arg.split("::")[0]).resolve()
        if path.is_file():
            found.add(path)
        elif path.is_dir():
            for pattern in patterns:
                found.update(p for p in path.rglob(pattern) if ".venv" not in p.parts and p.is_file())
    return sorted(found)


def _rewrite(config: pytest.Config, paths: list[Path]) -> int:
    from _pytest.assertion import rewrite

    state = config.stash[rewrite.assertstate_key]
    written = 0
    for fn in paths:
        pyc = rewrite.get_cache_dir(fn) / (fn.name[:-3] + rewrite.PYC_TAIL)
        if rewrite._read_pyc(fn, pyc) is not None:
            continue
        if not rewrite.try_makedirs(pyc.parent):
            continue
        source_hash, co = rewrite._rewrite_test(fn, config)
        written += rewrite._write_pyc(state, co, source_hash, pyc)
    return written


_CONFIG: pytest.Config | None = None


def _rewrite_share(paths: list[Path]) -> int:
    assert _CONFIG is not None  # set before the pool forks
    return _rewrite(_CONFIG, paths)


def prewarm(config: pytest.Config) -> int:
    """Write the rewritten modules that are not cached yet; the number written."""
    global _CONFIG
    if sys.dont_write_bytecode:
        return 0
    try:
        paths = test_modules(config)
        _CONFIG = config
        shares = [paths[i::PROCESSES] for i in range(PROCESSES)]
        fork = multiprocessing.get_context("fork")
        with ProcessPoolExecutor(PROCESSES, mp_context=fork) as pool:
            return sum(pool.map(_rewrite_share, shares))
    except Exception:  # a different pytest, a read-only checkout: the test processes rewrite as usual
        return 0
    finally:
        _CONFIG = None
