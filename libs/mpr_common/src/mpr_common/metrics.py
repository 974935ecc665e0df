"""Prometheus metrics of MPR, defined once (names are part of the operations contract)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

# transcoder
JOBS_FINISHED = Counter("mpr_transcoder_jobs_total", "Jobs finished by this replica", ["kind", "outcome"])
JOB_SECONDS = Histogram(
    "mpr_transcoder_job_duration_seconds",
    "Wall time from fetch to ack",
    ["kind"],
    buckets=(0.5, 1, 2, 5, 10, 30, 60, 120, 300, 600, 1800, 3600, 7200),
)
FFMPEG_SPEED = Histogram(
    "mpr_transcoder_ffmpeg_speed_ratio",
    "FFmpeg speed (x realtime) at the end of a job",
    ["kind"],
    buckets=(0.25, 0.5, 1, 2, 4, 8, 16, 32, 64, 128),
)
JOBS_IN_FLIGHT = Gauge("mpr_transcoder_jobs_in_flight", "Jobs running on this replica")
CONSUMER_PENDING = Gauge(
    "mpr_jetstream_consumer_pending", "Messages not yet delivered (consumer lag)", ["stream", "consumer"]
)
CONSUMER_ACK_PENDING = Gauge(
    "mpr_jetstream_consumer_ack_pending", "Delivered, not yet acknowledged", ["stream", "consumer"]
)

# catalog
CATALOG_JOBS = Gauge("mpr_catalog_jobs", "Jobs by state", ["state"])
CATALOG_ASSETS = Gauge("mpr_catalog_assets", "Registered assets (not removed)")
CATALOG_EVENTS = Counter("mpr_catalog_events_total", "Events applied", ["subject"])
PROBE_SECONDS = Histogram("mpr_catalog_probe_duration_seconds", "ffprobe wall time", ["outcome"])

# scanner
OBJECTS_EMITTED = Counter("mpr_scanner_objects_total", "Object events published", ["source", "event"])
SCAN_SECONDS = Histogram("mpr_scanner_scan_duration_seconds", "Listing + publishing one scan")

# api
JOBS_SUBMITTED = Counter("mpr_api_jobs_submitted_total", "Jobs accepted by the API", ["kind", "outcome"])
