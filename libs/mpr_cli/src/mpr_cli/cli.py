"""The CLI's client of the API: every command, one method each."""

from __future__ import annotations

from .control_commands import ControlCommands
from .follow import EventCommands
from .job_commands import JobCommands


class Cli(JobCommands, ControlCommands, EventCommands):
    """The API's client with every command of ``mpr``."""
