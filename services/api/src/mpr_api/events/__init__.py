"""The live event stream: SSE at /api/events and the GraphQL ``jobEvents`` subscription over one hub per
process (``feature.py`` exports it)."""
