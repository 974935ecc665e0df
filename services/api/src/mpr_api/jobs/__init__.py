"""Jobs: submission (with templates, executors and callbacks), listing, cancelling; REST, GraphQL and
the service (``feature.py`` exports it)."""
