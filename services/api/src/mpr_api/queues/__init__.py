"""Queues: priorities, pausing and moving queued jobs; REST, GraphQL and the service (``feature.py``
exports it)."""
