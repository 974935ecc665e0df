"""OpenTelemetry trace propagation over NATS headers (W3C ``traceparent``/``tracestate``).

Every publish injects the current context into the message headers; consumers continue the
trace from them. Spans are exported over OTLP when ``OTEL_EXPORTER_OTLP_ENDPOINT`` is set and the
exporter package is installed; propagation works without an exporter.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager

from opentelemetry import propagate, trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.trace import SpanKind

log = logging.getLogger(__name__)
_tracer = trace.get_tracer("mpr")
_exporting = False


def setup_tracing(service: str) -> None:
    global _exporting
    provider = TracerProvider(resource=Resource.create({"service.name": f"mpr-{service}"}))
    if os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT"):
        try:
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
            from opentelemetry.sdk.trace.export import BatchSpanProcessor

            provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
            _exporting = True
        except ImportError:
            log.warning("OTEL_EXPORTER_OTLP_ENDPOINT is set but opentelemetry-exporter-otlp is not installed")
    trace.set_tracer_provider(provider)


def inject(headers: dict[str, str] | None = None) -> dict[str, str]:
    """Headers carrying the current trace context (plus the ones given)."""
    out = dict(headers or {})
    propagate.inject(out)
    return out


def http_trace_headers(raw: Iterable[tuple[bytes, bytes]]) -> dict[str, str] | None:
    """An HTTP request's headers (ASGI's raw pairs) as a mapping when a span is worth making for it,
    else None without decoding any of them. A span costs a few percent of a small request: it is made
    when spans are exported, or when the caller sent a trace to continue (its id must travel on with
    the work)."""
    if not _exporting and not any(name == b"traceparent" for name, _ in raw):
        return None
    return {name.decode("latin-1"): value.decode("latin-1") for name, value in raw}


@contextmanager
def span_from(
    name: str, headers: Mapping[str, str] | None, kind: SpanKind = SpanKind.CONSUMER, **attributes: str
) -> Iterator[trace.Span]:
    """Continue the trace carried by ``headers`` (a NATS message's or an HTTP request's)."""
    ctx = propagate.extract(dict(headers or {}))
    with _tracer.start_as_current_span(name, context=ctx, kind=kind, attributes=attributes) as span:
        yield span


def trace_id_of(headers: Mapping[str, str] | None) -> str | None:
    tp = (headers or {}).get("traceparent")
    parts = tp.split("-") if tp else []
    return parts[1] if len(parts) == 4 else None
