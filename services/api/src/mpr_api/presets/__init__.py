"""Presets: the encoding presets a job may name (``feature.py`` exports it)."""
