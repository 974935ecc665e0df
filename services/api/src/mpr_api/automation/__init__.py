"""Automation: job templates, rules that start jobs from templates when objects are
registered, and their stores. ``feature.py`` exports it."""
