from __future__ import annotations

import os
import shutil
import tempfile

import pytest
from hypothesis import settings

from mpr_devstack.zygote import PRELOAD_ENV
from tests import rewrite_cache
from tests.media import MEDIA_CACHE_ENV
from tests.pg import Postgres, pg_bin
from tests.progress import Progress, order_items

# No per-example deadline: `make test` runs four test processes and their servers on two cores, where
# an example that takes 5 ms alone can take 300 ms; what a property test proves is never how fast it is
# (speed is measured in `make bench`). A test that wants a deadline sets its own.
settings.register_profile("mpr", deadline=None)
settings.load_profile("mpr")


@pytest.fixture(scope="session")
def postgres():
    if pg_bin() is None:
        if os.environ.get("CI"):
            pytest.fail("PostgreSQL server not installed: scripts/bootstrap.sh should have installed it")
        pytest.skip("PostgreSQL server not installed (make test installs Debian's postgresql)")
    pg = Postgres().start()
    yield pg
    pg.stop()


_MEDIA_CACHE = pytest.StashKey[str]()


# --- progress per test file, heavy files first (tests/progress.py) ---------------------------------
def pytest_configure(config: pytest.Config) -> None:
    # Each test process takes its servers' ports from a band of its own, below the kernel's ephemeral
    # range (mpr_devstack.servers.free_port), so parallel stacks never race for a port.
    worker = int(os.environ.get("PYTEST_XDIST_WORKER", "gw0").removeprefix("gw") or 0)
    # (assigned, not defaulted: xdist's workers inherit the controller's environment)
    os.environ["MPR_PORT_RANGE"] = f"{20000 + 1500 * worker}-{20000 + 1500 * worker + 1499}"
    os.environ["MPR_PORT_RANGE_PID"] = str(os.getpid())
    # Stacks fork their services from a launcher that imported them once (mpr_devstack.zygote):
    # seconds of CPU saved per service start. MPR_PRELOAD=0 runs them as plain processes.
    os.environ.setdefault(PRELOAD_ENV, "1")
    if not hasattr(config, "workerinput"):  # the controller (or a run without xdist) reports
        config.pluginmanager.register(Progress(config), "mpr-progress")
        # made here, before the workers start, so that they all inherit it (tests/media.py)
        os.environ[MEDIA_CACHE_ENV] = tempfile.mkdtemp(prefix="mpr-test-media-")
        config.stash[_MEDIA_CACHE] = os.environ[MEDIA_CACHE_ENV]
        if config.getoption("numprocesses", None):  # before the test processes start (tests/rewrite_cache.py)
            rewrite_cache.prewarm(config)


def pytest_unconfigure(config: pytest.Config) -> None:
    if _MEDIA_CACHE in config.stash:
        shutil.rmtree(config.stash[_MEDIA_CACHE], ignore_errors=True)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    order_items(items)
