"""What the live event stream reads: how many clients it serves, how much it buffers for each, and how
long it waits for them and for the catalog."""

from __future__ import annotations

from dataclasses import dataclass

from mpr_common.settings import EnvSettings, env


@dataclass(frozen=True)
class EventStreamSettings(EnvSettings):
    max_streams: int = env("API_EVENTS_MAX_STREAMS", default=200)  # per API process; 503 beyond
    buffer: int = env("API_EVENTS_BUFFER", default=1000)  # events waiting for one client; cut off beyond
    keepalive: float = env("API_EVENTS_KEEPALIVE", default=15.0)  # seconds of silence before ": keep-alive"
    send_timeout: float = env("API_EVENTS_SEND_TIMEOUT", default=30.0)  # a write blocked longer ends it
    lookup_timeout: float = env("API_EVENTS_LOOKUP_TIMEOUT", default=2.0)  # asking the catalog a job's kind
