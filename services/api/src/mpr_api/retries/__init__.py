"""Retries of ended jobs (one, or all matching a filter), a job's log of attempts, and the dead letter
queue (listed, and a job request replayed once). ``feature.py`` exports it."""
