"""The NATS side of a transcoder."""

from .lifecycle import Worker

__all__ = ["Worker"]
