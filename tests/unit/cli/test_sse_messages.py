"""mpr_cli.sse: what the CLI and the bench read from GET /api/events."""

from __future__ import annotations

from mpr_cli.sse import messages


def test_messages_carry_the_newest_id_their_type_and_json_data():
    lines = [
        ": keep-alive",
        "",
        "id: jobs:7",
        "event: job.progress",
        'data: {"job_id": "a",',
        'data:  "progress": 50}',
        "",
        'data: {"x": 1}',
        "",
        "id: jobs:9",
        "event: job.completed",
        "",  # no data yet: not a message
        'data: {"job_id": "a"}',
        "",
    ]
    assert list(messages(lines)) == [
        ("jobs:7", "job.progress", {"job_id": "a", "progress": 50}),
        ("jobs:7", "message", {"x": 1}),
        ("jobs:9", "job.completed", {"job_id": "a"}),
    ]
