"""A tiny HTTP server for services without one of their own (scanner, catalog, transcoder):
``/metrics`` (Prometheus text format), ``/health/live`` and ``/health/ready`` for Kubernetes probes."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable

from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, generate_latest

log = logging.getLogger(__name__)


class OpsServer:
    def __init__(self, port: int, ready: Callable[[], bool], host: str) -> None:
        self.port = port
        self.host = host
        self.ready = ready
        self._server: asyncio.Server | None = None

    async def start(self) -> None:
        if self.port:
            self._server = await asyncio.start_server(self._handle, self.host, self.port)
            log.info("metrics and health on :%d", self.port)

    async def stop(self) -> None:
        if self._server:
            self._server.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), 2)

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            line = await asyncio.wait_for(reader.readline(), 5)
            while (await asyncio.wait_for(reader.readline(), 5)) not in (b"\r\n", b"\n", b""):
                pass
            parts = line.decode("latin-1").split()
            path = parts[1].split("?")[0] if len(parts) >= 2 else ""
            if path == "/metrics":
                status, ctype, body = (
                    200,
                    CONTENT_TYPE_LATEST,
                    await asyncio.to_thread(generate_latest, REGISTRY),
                )
            elif path == "/health/live":
                status, ctype, body = 200, "text/plain", b"ok\n"
            elif path == "/health/ready":
                ok = self.ready()
                status, ctype, body = (200 if ok else 503), "text/plain", (b"ok\n" if ok else b"not ready\n")
            else:
                status, ctype, body = 404, "text/plain", b"not found\n"
            reason = {200: "OK", 404: "Not Found", 503: "Service Unavailable"}[status]
            writer.write(
                f"HTTP/1.1 {status} {reason}\r\nContent-Type: {ctype}\r\nContent-Length: {len(body)}\r\n"
                f"Connection: close\r\n\r\n".encode()
                + body
            )
            await writer.drain()
        except (TimeoutError, ConnectionError):
            pass
        finally:
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()
