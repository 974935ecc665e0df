"""The NATS side of a transcoder, in three parts:

- :mod:`.lifecycle`: the :class:`Worker`: binding to the queue and buckets, one task per free slot,
  readiness and lag, and shutdown (stop fetching, stop FFmpeg, NAK what is unfinished, drain);
- :mod:`.pulling`: which class's job a free slot takes (:mod:`.pull`, :mod:`.scheduler`,
  :mod:`.pause_flags`);
- :mod:`.attempt`: one delivery, from the message to its ack (the per-message state machine), with
  :mod:`.running` keeping the job's lease while it runs."""

from .lifecycle import Worker

__all__ = ["Worker"]
