"""Cross-cutting HTTP: the gate (auth), the ASGI edge, request limits and bodies, error responses, HTTP
metrics, health routes, and the settings every domain shares. It imports no domain."""
