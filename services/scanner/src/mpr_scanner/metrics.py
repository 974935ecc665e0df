"""The scanner's Prometheus metrics."""

from __future__ import annotations

from prometheus_client import Counter, Histogram

OBJECTS_EMITTED = Counter("mpr_scanner_objects_total", "Object events published", ["source", "event"])
SCAN_SECONDS = Histogram("mpr_scanner_scan_duration_seconds", "Listing + publishing one scan")
