"""A real HTTP receiver for webhook tests: a thread serving 127.0.0.1 on a random port, answering
each POST with the next status of its script (the last one repeats), recording what it was sent."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes
    at: float


@dataclass
class Receiver:
    """``script[path]``: statuses to answer in turn on that path (default 200); ``hold[path]``: an event
    each answer there waits for (a receiver that is slow for as long as a test needs, whatever the
    machine's speed); ``headers[path]``: extra response headers."""

    script: dict[str, list[int]] = field(default_factory=dict)
    hold: dict[str, threading.Event] = field(default_factory=dict)
    headers: dict[str, dict[str, str]] = field(default_factory=dict)
    received: list[Received] = field(default_factory=list)
    server: ThreadingHTTPServer | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def start(self) -> Receiver:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:  # noqa: N802 - http.server's naming
                body = self.rfile.read(int(self.headers.get("content-length", "0")))
                with receiver._lock:
                    receiver.received.append(
                        Received(
                            self.path, {k.lower(): v for k, v in self.headers.items()}, body, time.time()
                        )
                    )
                    statuses = receiver.script.get(self.path, [200])
                    status = statuses.pop(0) if len(statuses) > 1 else statuses[0]
                held = receiver.hold.get(self.path)
                if held is not None:
                    held.wait(60)
                self.send_response(status)
                for k, v in receiver.headers.get(self.path, {}).items():
                    self.send_header(k, v)
                self.send_header("content-length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        # shutdown() waits out one poll: a short one, as every test stops its receiver
        threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True).start()
        return self

    def stop(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()

    @property
    def port(self) -> int:
        assert self.server is not None
        return self.server.server_address[1]

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def on(self, path: str) -> list[Received]:
        with self._lock:
            return [r for r in self.received if r.path == path]

    def wait(self, path: str, count: int = 1, timeout: float = 15.0) -> list[Received]:
        return wait_until(
            lambda: len(self.on(path)) >= count and self.on(path), timeout, f"{count} on {path}"
        )


def wait_until(check: Callable[[], Any], timeout: float, what: str, interval: float = 0.05) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = check()
        if got:
            return got
        time.sleep(interval)
    raise AssertionError(f"timed out waiting for {what}")


async def until(check: Callable[[], Any], timeout: float, what: str, interval: float = 0.05) -> Any:
    """``wait_until`` for tests whose event loop runs the code under test."""
    import asyncio

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = check()
        if got:
            return got
        await asyncio.sleep(interval)
    raise AssertionError(f"timed out waiting for {what}")
