"""Assets: the media library, scans, and the media behind it (/media/in, /media/out, signed folder links
at /media/s); REST, GraphQL and the service (``feature.py`` exports it)."""
