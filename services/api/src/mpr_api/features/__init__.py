"""The API's feature modules, in the order their routes are registered."""

from __future__ import annotations

from ..feature import Feature
from . import automation, console, events, queues, retries, webhooks

FEATURES: list[Feature] = [
    events.FEATURE,
    webhooks.FEATURE,
    automation.FEATURE,
    queues.FEATURE,
    retries.FEATURE,
    console.FEATURE,
]
