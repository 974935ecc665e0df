"""HTTP metrics: a counter and a histogram per method and route template, observed by ``edge.py``.

(Litestar's Prometheus middleware builds a Request and label dicts per call: a tenth of a small request's
cost, measured on POST /api/jobs. Here the labelled children are looked up once per method, route and
status, then kept.)"""

from __future__ import annotations

from typing import Any

from prometheus_client import Counter, Histogram

REQUESTS = Counter("mpr_requests_total", "HTTP requests", ["method", "path", "status_code"])
DURATION = Histogram(
    "mpr_request_duration_seconds",
    "HTTP request duration",
    ["method", "path"],
    buckets=(0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
SKIPPED_PREFIXES = ("/health",)  # probes, every few seconds; /metrics is not served on this port
# Any token is a method on the wire: the others are counted as one, so that labels stay bounded.
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})

_children: dict[tuple[str, str, int], tuple[Any, Any]] = {}


def observe(method: str, path: str, status: int, seconds: float) -> None:
    """One request answered: ``path`` is the route's template (``/api/jobs/{job_id:str}``) or
    ``unmatched``, never the raw path."""
    key = (method if method in METHODS else "OTHER", path, status)
    pair = _children.get(key)
    if pair is None:
        pair = _children[key] = (REQUESTS.labels(key[0], path, str(status)), DURATION.labels(key[0], path))
    pair[0].inc()
    pair[1].observe(seconds)
