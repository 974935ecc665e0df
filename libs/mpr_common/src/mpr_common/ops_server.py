"""A tiny HTTP server for what only the cluster may see: ``/metrics`` (Prometheus text format),
``/health/live`` and ``/health/ready`` for Kubernetes probes, on ``METRICS_PORT``.

Every service runs one: the scanner, catalog and transcoder have no other HTTP server, and the API keeps
its metrics here rather than on its public port, which proxies publish (deploy/nginx.conf)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable

from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, generate_latest

log = logging.getLogger(__name__)

MAX_LINE = 8192  # bytes of a request or header line; a scraper's are a few dozen
READ_TIMEOUT = 5.0  # seconds for the whole request head
MAX_HEADERS = 100
REASONS = {
    200: "OK",
    400: "Bad Request",
    404: "Not Found",
    405: "Method Not Allowed",
    503: "Service Unavailable",
}


class BadRequest(Exception):
    pass


def parse_request_line(line: bytes) -> tuple[str, str]:
    """``(method, path)`` of an HTTP/1.x request line, the query dropped; :class:`BadRequest` for
    anything else."""
    parts = line.decode("latin-1").strip("\r\n").split(" ")
    if len(parts) != 3 or not parts[2].startswith("HTTP/1.") or not parts[1].startswith("/"):
        raise BadRequest
    return parts[0], parts[1].split("?", 1)[0]


class OpsServer:
    def __init__(self, port: int, ready: Callable[[], bool], host: str) -> None:
        self.port = port
        self.host = host
        self.ready = ready
        self._server: asyncio.Server | None = None

    async def start(self) -> None:
        if self.port:
            self._server = await asyncio.start_server(self._handle, self.host, self.port, limit=MAX_LINE)
            log.info("metrics and health on %s:%d", self.host, self.port)

    async def stop(self) -> None:
        if self._server:
            self._server.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), 2)

    async def answer(self, method: str, path: str) -> tuple[int, str, bytes]:
        if method not in ("GET", "HEAD"):
            return 405, "text/plain", b"method not allowed\n"
        if path == "/metrics":
            return 200, CONTENT_TYPE_LATEST, await asyncio.to_thread(generate_latest, REGISTRY)
        if path == "/health/live":
            return 200, "text/plain", b"ok\n"
        if path == "/health/ready":
            ok = self.ready()
            return (200 if ok else 503), "text/plain", (b"ok\n" if ok else b"not ready\n")
        return 404, "text/plain", b"not found\n"

    async def _read_head(self, reader: asyncio.StreamReader) -> tuple[str, str]:
        line = await reader.readline()
        for _ in range(MAX_HEADERS):
            if (await reader.readline()) in (b"\r\n", b"\n", b""):
                return parse_request_line(line)
        raise BadRequest

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            method = "GET"
            try:
                method, path = await asyncio.wait_for(self._read_head(reader), READ_TIMEOUT)
                status, ctype, body = await self.answer(method, path)
            except (BadRequest, ValueError):  # ValueError: a line longer than MAX_LINE
                status, ctype, body = 400, "text/plain", b"bad request\n"
            head = (
                f"HTTP/1.1 {status} {REASONS[status]}\r\nContent-Type: {ctype}\r\n"
                f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
            ).encode()
            writer.write(head if method == "HEAD" else head + body)
            await writer.drain()
        except (TimeoutError, ConnectionError):
            pass
        finally:
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()
