"""The API's features, in the order they start (a feature's lifespan may use what the ones before it
provided: jobs the assets' media links, queues and automation the jobs) and their routes and GraphQL
fields are registered."""

from __future__ import annotations

from .assets.feature import FEATURE as ASSETS
from .automation.feature import FEATURE as AUTOMATION
from .console.feature import FEATURE as CONSOLE
from .events.feature import FEATURE as EVENTS
from .feature import Feature
from .http.health import FEATURE as HEALTH
from .jobs.feature import FEATURE as JOBS
from .presets.feature import FEATURE as PRESETS
from .queues.feature import FEATURE as QUEUES
from .retries.feature import FEATURE as RETRIES
from .webhooks.feature import FEATURE as WEBHOOKS

FEATURES: list[Feature] = [
    ASSETS,
    JOBS,
    PRESETS,
    HEALTH,
    EVENTS,
    WEBHOOKS,
    AUTOMATION,
    QUEUES,
    RETRIES,
    CONSOLE,
]
