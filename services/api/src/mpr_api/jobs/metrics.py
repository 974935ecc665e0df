"""The API's own Prometheus metrics (HTTP metrics: ``http_metrics``). Served on ``METRICS_PORT`` by the
ops server (``__main__``), never on the public API port."""

from __future__ import annotations

from prometheus_client import Counter

JOBS_SUBMITTED = Counter("mpr_api_jobs_submitted_total", "Jobs accepted by the API", ["kind", "outcome"])
