"""The web console: pages (pages.py, templates/), their scripts and styles (static/), the
site's shared headers (site.py) and presigned uploads (uploads.py, upload_routes.py)."""
