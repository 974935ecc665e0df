"""Shared contract of MPR: events, subjects, storage, keys and presets."""
