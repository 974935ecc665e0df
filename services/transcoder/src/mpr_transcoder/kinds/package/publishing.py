"""A package's playlists are written under its job graph's lock: :mod:`..graph.lock`."""

from ..graph.lock import STALE_SECONDS, LockRecord, PublishingLock, lock_key

__all__ = ["STALE_SECONDS", "LockRecord", "PublishingLock", "lock_key"]
