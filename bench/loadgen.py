"""A light HTTP/1.1 load generator: raw asyncio keep-alive connections writing pre-encoded requests and
reading Content-Length responses. One Python process with httpx tops out near 2,000 req/s on a 2-core
machine, so httpx would measure itself; this costs a few tens of µs of CPU per request, and it
reports that cost (``cpu_us_per_req``) so every run shows whether it could have been the bottleneck.

The SAME generator (same requests, connections and concurrency) drives the bare Litestar app and MPR.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import time
from collections import Counter
from dataclasses import dataclass, field

try:  # uvicorn serves the API on uvloop; the generator uses it too when it is installed
    import uvloop
except ImportError:  # pragma: no cover
    uvloop = None


def encode_post(port: int, path: str, body: bytes, headers: dict[str, str] | None = None) -> bytes:
    lines = [
        f"POST {path} HTTP/1.1",
        f"Host: 127.0.0.1:{port}",
        "Content-Type: application/json",
        f"Content-Length: {len(body)}",
        *(f"{k}: {v}" for k, v in (headers or {}).items()),
    ]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


@dataclass
class LoadResult:
    requests: int
    concurrency: int
    processes: int
    started: float  # time.perf_counter() (CLOCK_MONOTONIC: comparable between processes)
    ended: float
    latencies: list[float] = field(default_factory=list)  # seconds, one per response
    statuses: Counter = field(default_factory=Counter)
    cpu_s: float = 0.0  # CPU time the generator itself used during the timed phase
    ok_all_phases: int = 0  # 2xx responses, warm-up included
    server_cpu_us: float = 0.0  # CPU the server's process used per 2xx response (set by the caller)

    @property
    def elapsed(self) -> float:
        return self.ended - self.started

    @property
    def per_s(self) -> float:
        return self.requests / self.elapsed

    @property
    def cpu_us_per_req(self) -> float:
        return 1e6 * self.cpu_s / self.requests


class _Client(asyncio.Protocol):
    def __init__(self, gen: _Gen) -> None:
        self.gen = gen
        self.buf = bytearray()
        self.need: int | None = None
        self.t0 = 0.0
        self.busy = False  # a request is out, its response not complete
        self.transport: asyncio.Transport | None = None
        self.closed = asyncio.get_running_loop().create_future()

    def connection_made(self, transport) -> None:  # type: ignore[override]
        self.transport = transport

    def connection_lost(self, exc) -> None:  # type: ignore[override]
        """The server closed the connection: the request in flight counts as status 0 (connection
        error); the other connections carry on with the remaining requests."""
        self.transport = None
        if self.busy:
            self.busy = False
            self.gen.record(time.perf_counter() - self.t0, 0)
        if not self.closed.done():
            self.closed.set_result(None)

    def send_next(self) -> None:
        req = self.gen.take()
        if req is None:
            if not self.closed.done():
                self.closed.set_result(None)
            return
        if self.transport is None:  # lost earlier: give the request back
            self.gen.next -= 1
            if not self.closed.done():
                self.closed.set_result(None)
            return
        self.t0 = time.perf_counter()
        self.busy = True
        self.transport.write(req)

    def data_received(self, data: bytes) -> None:
        buf = self.buf
        buf += data
        while True:
            if self.need is None:
                end = buf.find(b"\r\n\r\n")
                if end < 0:
                    return
                head = bytes(buf[:end]).lower()
                self.status = int(head[9:12])
                i = head.find(b"\r\ncontent-length:")
                if i < 0:
                    raise ValueError("the load generator reads Content-Length responses only")
                j = head.find(b"\r\n", i + 2)
                self.need = end + 4 + int(head[i + 17 : j if j > 0 else None])
            if len(buf) < self.need:
                return
            del buf[: self.need]
            self.need = None
            self.busy = False
            self.gen.record(time.perf_counter() - self.t0, self.status)
            self.send_next()


class _Gen:
    def __init__(self, requests: list[bytes]) -> None:
        self.requests = requests
        self.next = 0
        self.latencies: list[float] = []
        self.statuses: Counter = Counter()

    def remaining(self) -> int:
        return len(self.requests) - self.next

    def take(self) -> bytes | None:
        if self.next >= len(self.requests):
            return None
        self.next += 1
        return self.requests[self.next - 1]

    def record(self, latency: float, status: int) -> None:
        self.latencies.append(latency)
        self.statuses[status] += 1


async def _run(port: int, phases: list[list[bytes]], concurrency: int, start_at=None) -> LoadResult:
    """Open ``concurrency`` connections, run each phase (the last one is timed) over them."""
    loop = asyncio.get_running_loop()
    conns: list[_Client] = []
    idle = _Gen([])
    for _ in range(concurrency):
        _, proto = await loop.create_connection(lambda: _Client(idle), "127.0.0.1", port)
        conns.append(proto)
    result = None
    ok = 0
    for n, requests in enumerate(phases):
        timed = n == len(phases) - 1
        if timed and start_at is not None:
            start_at()
        gen = _Gen(requests)
        for c in conns:
            c.gen = gen
            c.closed = loop.create_future()
        cpu0, t0 = time.process_time(), time.perf_counter()
        for c in conns:
            c.send_next()
        await asyncio.gather(*(c.closed for c in conns))
        t1, cpu1 = time.perf_counter(), time.process_time()
        if gen.remaining():
            raise ConnectionError(f"every connection was closed with {gen.remaining()} requests unsent")
        ok += sum(k for s, k in gen.statuses.items() if 200 <= s < 300)
        if timed:
            result = LoadResult(
                len(requests), concurrency, 1, t0, t1, gen.latencies, gen.statuses, cpu1 - cpu0
            )
    for c in conns:
        if c.transport:
            c.transport.close()
    assert result is not None
    result.ok_all_phases = ok
    return result


def run_async(coro):
    if uvloop is not None:
        return uvloop.run(coro)
    return asyncio.run(coro)


def _child(port, phases, concurrency, barrier, queue) -> None:
    res = run_async(_run(port, phases, concurrency, start_at=barrier.wait))
    queue.put(res)


def run_load(
    port: int, requests: list[bytes], concurrency: int, warmup: list[bytes] | None = None, processes: int = 1
) -> LoadResult:
    """Send ``requests`` over ``concurrency`` keep-alive connections (a closed loop: each connection
    sends its next request when the previous response is complete); ``warmup`` first, untimed."""
    phases = ([warmup] if warmup else []) + [requests]
    if processes <= 1:
        return run_async(_run(port, phases, concurrency))
    ctx = multiprocessing.get_context("spawn")
    barrier, queue = ctx.Barrier(processes), ctx.Queue()
    split = [[p[i::processes] for p in phases] for i in range(processes)]
    conc = [concurrency // processes + (i < concurrency % processes) for i in range(processes)]
    procs = [
        ctx.Process(target=_child, args=(port, split[i], conc[i], barrier, queue), daemon=True)
        for i in range(processes)
    ]
    for p in procs:
        p.start()
    parts = [queue.get(timeout=3600) for _ in procs]
    for p in procs:
        p.join()
    out = LoadResult(
        sum(r.requests for r in parts),
        concurrency,
        processes,
        min(r.started for r in parts),
        max(r.ended for r in parts),
        cpu_s=sum(r.cpu_s for r in parts),
        ok_all_phases=sum(r.ok_all_phases for r in parts),
    )
    for r in parts:
        out.latencies += r.latencies
        out.statuses.update(r.statuses)
    return out


def cpu_count() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
