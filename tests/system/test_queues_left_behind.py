"""``GET /api/queues`` after moves: the copy a move leaves behind in its old class is not waiting work
(it is skipped when delivered), so the class shows neither a pending job nor an oldest wait for it,
even while the class is paused and nothing delivers it."""

from __future__ import annotations

import pytest

from tests.system.test_queues_api import api, bus, submit  # noqa: F401 (fixtures)

pytestmark = pytest.mark.system


async def queues(client) -> dict:
    r = await client.get("/api/queues")
    assert r.status_code == 200, r.text
    return {q["priority"]: q for q in r.json()["queues"]}


async def test_a_moved_jobs_old_copy_is_not_pending(api):  # noqa: F811
    client, _nc, catalog, _places = api
    assert (await client.post("/api/queues/bulk/pause")).status_code == 200
    await submit(client, catalog, "bulk", "mover")
    before = await queues(client)
    assert before["bulk"]["pending"] == 1 and before["bulk"]["oldest_waiting_seconds"] is not None

    r = await client.post("/api/jobs/mover/move", json={"priority": "urgent"})
    assert r.status_code == 200, r.text
    after = await queues(client)
    assert after["bulk"]["pending"] == 0, after
    assert after["bulk"]["oldest_waiting_seconds"] is None
    assert after["urgent"]["pending"] == 1 and after["urgent"]["oldest_waiting_seconds"] is not None


async def test_only_the_left_behind_copies_are_discounted(api):  # noqa: F811
    client, _nc, catalog, _places = api
    await client.post("/api/queues/pause")
    for job in ("first", "second", "third", "fourth"):
        await submit(client, catalog, "bulk", job)
    for job in ("first", "third"):  # the head and one in the middle
        assert (await client.post(f"/api/jobs/{job}/move", json={"priority": "normal"})).status_code == 200
    q = await queues(client)
    assert q["bulk"]["pending"] == 2 and q["normal"]["pending"] == 2, q
    assert q["bulk"]["oldest_waiting_seconds"] is not None

    # Moved back: the newest copy waits in bulk again, and the two copies before it do not.
    assert (await client.post("/api/jobs/first/move", json={"priority": "bulk"})).status_code == 200
    q = await queues(client)
    assert q["bulk"]["pending"] == 3 and q["normal"]["pending"] == 1, q


async def test_a_refused_move_leaves_the_counts_alone(api):  # noqa: F811
    client, _nc, catalog, _places = api
    await client.post("/api/queues/bulk/pause")
    await submit(client, catalog, "bulk", "stays")
    r = await client.post("/api/jobs/missing/move", json={"priority": "urgent"})
    assert r.status_code == 404
    q = await queues(client)
    assert q["bulk"]["pending"] == 1 and q["urgent"]["pending"] == 0
