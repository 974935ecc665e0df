"""The catalog's Prometheus metrics."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

CATALOG_JOBS = Gauge("mpr_catalog_jobs", "Jobs by state", ["state"])
CATALOG_ASSETS = Gauge("mpr_catalog_assets", "Registered assets (not removed)")
CATALOG_EVENTS = Counter("mpr_catalog_events_total", "Events applied", ["subject"])
BATCH_SIZE = Histogram(
    "mpr_catalog_batch_size", "Messages per ingested batch", ["stream"], buckets=(1, 5, 20, 50, 100, 250, 500)
)
PROBE_SECONDS = Histogram("mpr_catalog_probe_duration_seconds", "ffprobe wall time", ["outcome"])
