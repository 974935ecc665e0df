"""The transcoder's Prometheus metrics."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

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
