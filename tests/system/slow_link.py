"""A slow link to a server on loopback: a TCP proxy that passes what the client sends at once and what the
server answers at most ``rate`` bytes a second per connection (after a first ``burst``, so that short
answers are not delayed). Fault tests give it to the transcoders whose job must still be running when
the fault strikes: FFmpeg then waits on its source for as long as the link takes to carry it, instead of
encoding a large source for as long as the CPU takes (which the CPU pays for, and the machine's load
decides)."""

from __future__ import annotations

import contextlib
import socket
import threading
import time

from mpr_devstack.servers import free_port

_CHUNK = 8 * 1024


class SlowLink:
    def __init__(self, target_port: int, rate: float, burst: int = 16 * 1024) -> None:
        self.target = ("127.0.0.1", target_port)
        self.rate = rate  # bytes a second, server to client
        self.burst = burst
        self.port = free_port()
        self._listener: socket.socket | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> SlowLink:
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", self.port))
        sock.listen(64)
        self._listener = sock
        threading.Thread(target=self._accept, args=(sock,), daemon=True).start()
        return self

    def stop(self) -> None:
        if self._listener:
            with contextlib.suppress(OSError):
                self._listener.shutdown(socket.SHUT_RDWR)
            self._listener.close()
            self._listener = None

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(self.target, timeout=5)
                upstream.settimeout(None)
            except OSError:
                client.close()
                continue
            ends = _Ends()
            for src, dst, rate in ((client, upstream, None), (upstream, client, self.rate)):
                threading.Thread(target=self._pipe, args=(src, dst, rate, ends), daemon=True).start()

    def _pipe(self, src: socket.socket, dst: socket.socket, rate: float | None, ends: _Ends) -> None:
        credit, last = float(self.burst), time.monotonic()  # a token bucket: at most a burst saved up
        try:
            while data := src.recv(_CHUNK):
                if rate is not None:
                    now = time.monotonic()
                    credit = min(float(self.burst), credit + (now - last) * rate) - len(data)
                    last = now
                    if credit < 0:
                        time.sleep(-credit / rate)
                dst.sendall(data)
            with contextlib.suppress(OSError):
                dst.shutdown(socket.SHUT_WR)  # pass the FIN on
        except OSError:  # either end gone: cut the other direction too
            for s in (src, dst):
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)
        if ends.last():
            src.close()
            dst.close()


class _Ends:
    """A connection's two directions: the one that ends last closes both sockets."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._ended = 0

    def last(self) -> bool:
        with self._lock:
            self._ended += 1
            return self._ended == 2
