"""The API's settings: the settings of each of its domains, joined. Each field is declared once, with
its environment variable and default, in the domain that reads it (``http/settings.py`` for what they
all read); a domain's code takes its own settings type, which ``ApiSettings`` is too."""

from __future__ import annotations

from dataclasses import dataclass

from .assets.settings import AssetSettings
from .console.settings import ConsoleSettings
from .events.settings import EventStreamSettings
from .jobs.settings import JobSettings
from .webhooks.settings import WebhookSettings


@dataclass(frozen=True)
class ApiSettings(JobSettings, AssetSettings, WebhookSettings, ConsoleSettings, EventStreamSettings):
    """Validation: each domain's ``__post_init__`` checks its fields, then calls the next (``super()``)."""
