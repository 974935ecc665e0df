"""The rules the console's scripts follow, from the modules that define them: which statuses end a job
and which a retry takes (mpr_common.job_status), the job kinds and statuses (mpr_common.events), the job
event types and the status each says (the event stream's). Every page embeds them as one JSON block
(``#mpr-contract``, read by static/js/contract.js): the scripts keep no copy of their own."""

from __future__ import annotations

from typing import Any

from mpr_common.events import JOB_KINDS, JOB_STATUSES
from mpr_common.job_status import RETRYABLE_STATUSES, is_terminal
from mpr_common.jobs import CHILD_KINDS

from ..events.stream import JOB_EVENT_STATUS, JOB_EVENT_TYPES


def console_contract() -> dict[str, Any]:
    return {
        "job_statuses": list(JOB_STATUSES),
        "terminal_statuses": [st for st in JOB_STATUSES if is_terminal(st)],
        "retryable_statuses": list(RETRYABLE_STATUSES),
        "job_kinds": list(JOB_KINDS),
        # what the new-job form offers: a package's parts are planned by its transcoder
        "form_kinds": [k for k in JOB_KINDS if k not in CHILD_KINDS],
        "job_events": list(JOB_EVENT_TYPES),
        "event_status": dict(JOB_EVENT_STATUS),
    }
