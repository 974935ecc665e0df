"""The API's own Prometheus metrics (HTTP metrics come from Litestar's Prometheus middleware)."""

from __future__ import annotations

from prometheus_client import Counter

JOBS_SUBMITTED = Counter("mpr_api_jobs_submitted_total", "Jobs accepted by the API", ["kind", "outcome"])
