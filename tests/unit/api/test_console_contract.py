"""The rules the console's scripts follow come from the server: every page embeds them (one JSON block),
equal to mpr_common's, and no script keeps a list of statuses of its own."""

from __future__ import annotations

import html
import json
import re
from pathlib import Path

from mpr_api.console.site import STATIC
from mpr_api.events.stream import EVENT_TYPES
from mpr_common.events import JOB_KINDS, JOB_STATUSES
from mpr_common.job_status import RETRYABLE_STATUSES, TERMINAL_STATUSES, failed_status, next_status
from tests.unit.api.test_console_auth import make_client

_BLOCK = re.compile(r'<script type="application/json" id="mpr-contract">(.*?)</script>', re.S)


def _embedded(page: str) -> dict:
    m = _BLOCK.search(page)
    assert m, "the page embeds no contract"
    return json.loads(html.unescape(m.group(1)))


def test_every_page_embeds_mpr_commons_rules():
    with make_client(tokens=frozenset()) as c:
        pages = [
            c.get(p).text for p in ("/console/", "/console/jobs", "/console/jobs/job-1", "/console/sign-in")
        ]
    contracts = [_embedded(p) for p in pages]
    assert all(got == contracts[0] for got in contracts)
    got = contracts[0]
    assert got["job_statuses"] == list(JOB_STATUSES)
    assert set(got["terminal_statuses"]) == TERMINAL_STATUSES
    assert got["retryable_statuses"] == list(RETRYABLE_STATUSES)
    assert got["job_kinds"] == list(JOB_KINDS)
    assert set(got["form_kinds"]) < set(JOB_KINDS) and "rendition" not in got["form_kinds"]
    job_events = [t for t in EVENT_TYPES if t.startswith("job.")]
    assert got["job_events"] == job_events and set(got["event_status"]) == set(job_events)
    for type_, status in got["event_status"].items():
        assert status in JOB_STATUSES
        # an ending event names the status its job ends in, which nothing after it changes
        if status in TERMINAL_STATUSES:
            assert type_ == f"job.{status}" and next_status(status, "running") == status
    assert got["event_status"][f"job.{failed_status('cancelled')}"] == "cancelled"


def test_the_forms_offer_what_the_contract_says():
    with make_client(tokens=frozenset()) as c:
        jobs, new_job = c.get("/console/jobs").text, c.get("/console/jobs/new").text
    contract = _embedded(jobs)
    status_select = re.search(r'<select id="status".*?</select>', jobs, re.S)
    kind_select = re.search(r'<select id="kind".*?</select>', new_job, re.S)
    assert status_select and kind_select
    assert re.findall(r"<option>([a-z]+)</option>", status_select.group(0)) == contract["job_statuses"]
    assert re.findall(r"<option>([a-z]+)</option>", kind_select.group(0)) == contract["form_kinds"]


def test_no_script_keeps_a_list_of_job_statuses():
    statuses = "|".join(JOB_STATUSES)
    # two or more statuses quoted side by side in a list or an object: a copy of a rule
    listed = re.compile(rf'["\'](?:{statuses})["\']\s*[,:]\s*["\'](?:job\.)?(?:{statuses})["\']')
    scripts = [p for p in Path(STATIC, "js").rglob("*.js")]
    assert scripts
    for script in scripts:
        found = listed.findall(script.read_text())
        assert not found, f"{script.name}: {found}"
