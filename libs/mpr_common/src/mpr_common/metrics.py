"""Prometheus metrics every service may export; each service defines its own in its ``metrics``
module (names are part of the operations contract)."""

from __future__ import annotations

from prometheus_client import Gauge

CONSUMER_PENDING = Gauge(
    "mpr_jetstream_consumer_pending", "Messages not yet delivered (consumer lag)", ["stream", "consumer"]
)
CONSUMER_ACK_PENDING = Gauge(
    "mpr_jetstream_consumer_ack_pending", "Delivered, not yet acknowledged", ["stream", "consumer"]
)
CONSUMER_PRESENT = Gauge(
    "mpr_jetstream_consumer_present",
    "1 while the durable consumer exists (alert on 0)",
    ["stream", "consumer"],
)
