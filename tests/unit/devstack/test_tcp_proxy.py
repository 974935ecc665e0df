"""TcpProxy counts the bytes the client's application read, not the bytes it pulled from upstream.

The bound: the proxy never has more than ``unread_bound`` (= MAX_UNREAD, 32 KiB) bytes forwarded but
not yet read by the client (its own send queue, measured with SIOCOUTQ, plus the client's receive
queue, measured with sock_diag), and subtracts its own send queue when the connection ends. So a client
that read N bytes and closed is counted in [N, N + unread_bound]; the old proxy counted everything that
fitted in the proxy's and the client's socket buffers (megabytes with a large receive buffer).
"""

from __future__ import annotations

import contextlib
import socket
import sys
import threading
import time
from collections.abc import Iterator

import pytest

from mpr_devstack.tcp_proxy import TcpProxy

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="SIOCOUTQ and sock_diag")

MiB = 1024 * 1024
RESPONSE = 64 * MiB  # far more than any socket buffer along the way
REQUEST = b"GET /big HTTP/1.1\r\n\r\n"


class Upstream:
    """Answers each connection's first bytes with ``size`` bytes, then closes (or is cut)."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._one, args=(conn,), daemon=True).start()

    def _one(self, conn: socket.socket) -> None:
        chunk = b"x" * MiB
        try:
            conn.recv(1024)
            left = self.size
            while left:
                left -= conn.send(chunk[: min(left, MiB)])
        except OSError:
            pass
        finally:
            conn.close()


@pytest.fixture
def proxy() -> Iterator[TcpProxy]:
    up = Upstream(RESPONSE)
    p = TcpProxy(up.port).start()
    p.upstream = up  # type: ignore[attr-defined]
    yield p
    p.stop()
    up.sock.close()


def connect(proxy: TcpProxy, rcvbuf: int = 8 * MiB) -> socket.socket:
    """A client with a large receive buffer (FFmpeg's is autotuned up to tcp_rmem's maximum)."""
    c = socket.socket()
    c.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    c.connect(("127.0.0.1", proxy.port))
    c.sendall(REQUEST)
    return c


def read_exactly(c: socket.socket, n: int) -> None:
    got = 0
    while got < n:
        data = c.recv(min(65536, n - got))
        assert data, "connection closed early"
        got += len(data)


def settled(proxy: TcpProxy, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while proxy.open_connections and time.monotonic() < deadline:
        time.sleep(0.01)
    assert proxy.open_connections == 0


@pytest.mark.parametrize("n", [0, 100_000, 3 * MiB])
def test_client_that_reads_n_bytes_and_closes_is_counted_close_to_n(proxy, n):
    c = connect(proxy)
    read_exactly(c, n)
    time.sleep(0.3)  # a busy reader: every queue on the way fills up while it does not read
    c.close()  # unread data in its receive queue: the kernel resets the connection
    settled(proxy)
    assert n <= proxy.bytes_down <= n + proxy.unread_bound
    assert proxy.bytes_down_forwarded <= n + proxy.unread_bound
    assert proxy.bytes_up == len(REQUEST)


def test_open_connection_counts_exactly_what_was_read(proxy):
    c = connect(proxy)
    read_exactly(c, MiB)
    time.sleep(0.3)
    assert proxy.bytes_down == MiB  # both queues are subtracted while the connection is open
    c.close()


def test_several_connections_each_within_the_bound(proxy):
    sizes = [10_000, 500_000, 2 * MiB]
    clients = [connect(proxy) for _ in sizes]
    for c, n in zip(clients, sizes, strict=True):
        read_exactly(c, n)
    time.sleep(0.2)
    for c in clients:
        c.close()
    settled(proxy)
    assert sum(sizes) <= proxy.bytes_down <= sum(sizes) + len(sizes) * proxy.unread_bound
    assert proxy.connections == len(sizes)


def test_a_complete_response_is_counted_in_full():
    up = Upstream(5 * MiB + 123)
    proxy = TcpProxy(up.port).start()
    try:
        c = connect(proxy, rcvbuf=64 * 1024)
        got = 0
        while data := c.recv(65536):
            got += len(data)
        c.close()
        settled(proxy)
        assert got == proxy.bytes_down == proxy.bytes_down_forwarded == 5 * MiB + 123
    finally:
        proxy.stop()
        up.sock.close()


def test_block_cuts_connections_and_unblock_lets_new_ones_in(proxy):
    c = connect(proxy)
    read_exactly(c, 1000)
    proxy.block()
    c.settimeout(5)  # a hang fails the test with a timeout
    with contextlib.suppress(ConnectionResetError):
        while c.recv(65536):  # the bytes already forwarded, then EOF (or a reset)
            pass
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", proxy.port), timeout=2)
    settled(proxy)
    proxy.unblock()
    c2 = connect(proxy)
    read_exactly(c2, 10_000)
    c2.close()


def test_labelled_connections_are_counted_apart(proxy):
    """``label`` names each client as it connects (here by its port, chosen by the test); the count
    splits by those names, an open connection's exactly, a closed one's within the bound."""
    names: dict[int, str] = {}
    proxy.label = lambda client: names.get(client[1], "unknown")
    clients = {}
    for name in ("a", "b"):
        c = socket.socket()
        c.bind(("127.0.0.1", 0))
        names[c.getsockname()[1]] = name
        c.connect(("127.0.0.1", proxy.port))
        c.sendall(REQUEST)
        clients[name] = c
    read_exactly(clients["a"], 100_000)
    read_exactly(clients["b"], MiB)
    time.sleep(0.2)
    assert proxy.bytes_down_by_label == {"a": 100_000, "b": MiB}
    clients["a"].close()
    settled_a = time.monotonic() + 10
    while proxy.open_connections > 1 and time.monotonic() < settled_a:
        time.sleep(0.01)
    by_label = proxy.bytes_down_by_label
    assert 100_000 <= by_label["a"] <= 100_000 + proxy.unread_bound and by_label["b"] == MiB
    assert sum(by_label.values()) == proxy.bytes_down
    clients["b"].close()


def test_a_slow_link_carries_each_answer_at_its_rate_after_a_burst():
    # 256 KiB at 512 KiB/s after a 64 KiB burst: at least 0.375 s, however fast the machine
    up = Upstream(256 * 1024)
    proxy = TcpProxy(up.port, rate=512 * 1024, burst=64 * 1024).start()
    try:
        c = connect(proxy)
        started, got = time.monotonic(), 0
        while data := c.recv(65536):
            got += len(data)
        took = time.monotonic() - started
        c.close()
        settled(proxy)
        assert got == proxy.bytes_down == 256 * 1024  # slowed, never cut short
        assert took >= (256 - 64) / 512
    finally:
        proxy.stop()
        up.sock.close()
