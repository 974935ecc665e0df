from __future__ import annotations

import os

import pytest

from tests.pg import Postgres, pg_bin


@pytest.fixture(scope="session")
def postgres():
    if pg_bin() is None:
        if os.environ.get("CI"):
            pytest.fail("PostgreSQL server not installed: scripts/bootstrap.sh should have installed it")
        pytest.skip("PostgreSQL server not installed (make test installs Debian's postgresql)")
    pg = Postgres().start()
    yield pg
    pg.stop()
