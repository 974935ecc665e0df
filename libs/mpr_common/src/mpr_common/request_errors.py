"""The error of a job request that can never succeed: the API answers it with a 400 naming the field,
a transcoder fails the job as invalid. Its own module so that every rule of a request can raise it."""

from __future__ import annotations


class JobRequestError(ValueError):
    """The request can never succeed; the message says why, and ``field`` names the request's field it
    concerns (None: the request as a whole), so that a client can show the message next to it."""

    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field
