"""A loopback TCP proxy that counts bytes and can be switched off and on (fault tests: "S3 unavailable
for a while"; benchmarks: bytes a job read from S3).

``bytes_down`` counts what the client's application read, not what the proxy pulled from upstream.
Forwarded bytes can still sit in kernel queues when the client closes (the proxy's send queue, the
client's receive queue, which Linux autotunes up to ``tcp_rmem``'s maximum, tens of MiB), and counting
them over-states what e.g. FFmpeg read before it closed a connection to seek. So:

- the proxy's sockets get small buffers (``SO_RCVBUF``/``SO_SNDBUF``, set before ``listen`` and
  ``connect`` so that the TCP window is negotiated with them);
- the proxy sends to the client only while "forwarded but not read by the client's application" is
  below ``MAX_UNREAD``: its own unacknowledged send queue (``SIOCOUTQ``) plus the client socket's
  receive queue, looked up with ``sock_diag`` (netlink ``inet_diag``, the loopback connection's exact
  4-tuple; ``idiag_rqueue`` is ``rcv_nxt - copied_seq``, i.e. received and not yet read). Each send is
  at most ``MAX_UNREAD`` minus that, so the sum never exceeds ``MAX_UNREAD``;
- when the connection ends, what is still in the proxy's send queue (``SIOCOUTQ``) is subtracted.

A client that reads N bytes and then closes is therefore counted between N and N + ``unread_bound``
(= ``MAX_UNREAD``, per connection): only what was in the client's receive queue when it closed is lost
with its socket and cannot be measured afterwards. On open connections ``bytes_down`` subtracts both
queues, so it is exact. Without ``sock_diag`` (not Linux, or a client on another host) the pacing uses
the proxy's own send queue only, and the client's receive buffer adds to the bound.

``rate``, when set, makes it a slow link: what the server answers reaches each client at most ``rate``
bytes a second after a first ``burst`` (so that short answers pass at once); what the client sends is
not slowed. Fault tests give one to a transcoder whose job must still be running when the fault
strikes: FFmpeg waits on its source for as long as the link takes, whatever the machine's load.

``label``, when set, names each new connection's client (called with the client's address as it
connects, while the client waits for its answer, so its socket is still open): ``bytes_down_by_label``
then splits the count by those names, e.g. by the process that opened the connection.
"""

from __future__ import annotations

import contextlib
import socket
import struct
import sys
import threading
import time
from collections.abc import Callable

try:
    import fcntl
    import termios
except ImportError:  # pragma: no cover - not a POSIX system: no SIOCOUTQ, count what was forwarded
    fcntl = termios = None  # type: ignore[assignment]

from .servers import free_port

SOCK_BUF = 32 * 1024  # asked for on every proxy socket; Linux doubles it (bookkeeping overhead)
MAX_UNREAD = 32 * 1024  # forwarded bytes the client's application may not have read yet
MIN_SEND = 8 * 1024  # wait for at least this much room before sending (fewer, larger sends)
_RECV = 64 * 1024

# sock_diag (linux/inet_diag.h): look one TCP socket up by its 4-tuple.
_NETLINK_SOCK_DIAG = 4
_SOCK_DIAG_BY_FAMILY = 20
_NLM_F_REQUEST = 1
_NLMSG_ERROR = 2
_NO_COOKIE = 0xFFFFFFFF


def _outq(sock: socket.socket) -> int:
    """Bytes written to ``sock`` that its peer's kernel has not acknowledged (Linux: ``SIOCOUTQ``)."""
    if fcntl is None or termios is None:
        return 0
    try:
        return struct.unpack("i", fcntl.ioctl(sock.fileno(), termios.TIOCOUTQ, b"\0\0\0\0"))[0]
    except (OSError, ValueError):
        return 0


def _rqueue(local: tuple[str, int], remote: tuple[str, int]) -> int | None:
    """Unread bytes in the receive queue of the TCP socket ``local`` → ``remote`` on this host, or None
    if there is no such socket (closed) or it cannot be looked up."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        sockid = (
            struct.pack("!HH", local[1], remote[1])
            + socket.inet_aton(local[0]).ljust(16, b"\0")
            + socket.inet_aton(remote[0]).ljust(16, b"\0")
            + struct.pack("=III", 0, _NO_COOKIE, _NO_COOKIE)
        )
        body = struct.pack("=BBBBI", socket.AF_INET, socket.IPPROTO_TCP, 0, 0, 0xFFFFFFFF) + sockid
        with socket.socket(socket.AF_NETLINK, socket.SOCK_DGRAM, _NETLINK_SOCK_DIAG) as nl:
            nl.send(struct.pack("=IHHII", 16 + len(body), _SOCK_DIAG_BY_FAMILY, _NLM_F_REQUEST, 1, 0) + body)
            reply = nl.recv(4096)
        if struct.unpack_from("=H", reply, 4)[0] == _NLMSG_ERROR:
            return None
        # nlmsghdr (16) + family, state, timer, retrans (4) + sockid (48) + expires (4) → rqueue
        return struct.unpack_from("=I", reply, 16 + 4 + 48 + 4)[0]
    except (OSError, struct.error):
        return None


def _small_buffers(sock: socket.socket) -> None:
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, SOCK_BUF)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, SOCK_BUF)


class _Conn:
    def __init__(self, client: socket.socket, upstream: socket.socket) -> None:
        self.client = client
        self.upstream = upstream
        self.client_addr = client.getpeername()  # the client's own socket: local side ...
        self.proxy_addr = client.getsockname()  # ... and its remote side
        self.diag = _rqueue(self.client_addr, self.proxy_addr) is not None
        self.sent = 0  # bytes the client's socket accepted from us
        self.fin_sent = False  # our FIN (one sequence number) may sit in SIOCOUTQ
        self.dead = False
        self.ends = 0
        self.label = ""

    def unread(self) -> int | None:
        """Forwarded bytes the client's application has not read; None once its socket is gone."""
        outq = _outq(self.client)
        if self.fin_sent and outq:
            outq -= 1
        if not self.diag:
            return outq
        rq = _rqueue(self.client_addr, self.proxy_addr)
        return None if rq is None else outq + rq


class TcpProxy:
    unread_bound = MAX_UNREAD  # per connection, see the module docstring

    def __init__(
        self, target_port: int, port: int | None = None, rate: float | None = None, burst: int = 16 * 1024
    ) -> None:
        self.target = ("127.0.0.1", target_port)
        self.port = port or free_port()
        self.rate = rate  # bytes a second, upstream -> each client (None: as fast as the client reads)
        self.burst = burst
        self._listener: socket.socket | None = None
        self._conns: set[_Conn] = set()
        self._lock = threading.Lock()
        self.connections = 0
        self._down_closed = 0  # delivered on connections that have ended
        self.bytes_down_forwarded = 0  # upstream -> client, accepted by the client socket (the old count)
        self.bytes_up = 0  # client -> upstream, forwarded
        self.label: Callable[[tuple[str, int]], str] | None = None
        self._down_closed_by_label: dict[str, int] = {}

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def open_connections(self) -> int:
        with self._lock:
            return len(self._conns)

    @property
    def bytes_down(self) -> int:
        """Upstream → client bytes the client's application read (see the module docstring)."""
        with self._lock:
            total, open_conns = self._down_closed, list(self._conns)
        for c in open_conns:
            total += max(0, c.sent - (c.unread() or 0))
        return total

    @property
    def bytes_down_by_label(self) -> dict[str, int]:
        """:attr:`bytes_down` split by the connections' labels (see the module docstring)."""
        with self._lock:
            totals, open_conns = dict(self._down_closed_by_label), list(self._conns)
        for c in open_conns:
            totals[c.label] = totals.get(c.label, 0) + max(0, c.sent - (c.unread() or 0))
        return totals

    def start(self) -> TcpProxy:
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        _small_buffers(sock)  # inherited by the accepted sockets
        sock.bind(("127.0.0.1", self.port))
        sock.listen(128)
        self._listener = sock
        threading.Thread(target=self._accept, args=(sock,), daemon=True).start()
        return self

    def block(self) -> None:
        """Refuse new connections and cut the open ones."""
        if self._listener:
            with contextlib.suppress(OSError):
                self._listener.shutdown(socket.SHUT_RDWR)
            self._listener.close()
            self._listener = None
        with self._lock:
            conns = list(self._conns)
        for c in conns:
            c.dead = True
            for s in (c.client, c.upstream):
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)

    def unblock(self) -> None:
        self.start()

    def stop(self) -> None:
        self.block()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            try:
                upstream = socket.socket()
                _small_buffers(upstream)
                upstream.settimeout(5)
                upstream.connect(self.target)
                upstream.settimeout(None)
                conn = _Conn(client, upstream)
                if self.label is not None:
                    conn.label = self.label(conn.client_addr)
            except OSError:
                client.close()
                continue
            with self._lock:
                self.connections += 1
                self._conns.add(conn)
            threading.Thread(target=self._up, args=(conn,), daemon=True).start()
            threading.Thread(target=self._down, args=(conn,), daemon=True).start()

    def _up(self, c: _Conn) -> None:
        try:
            while data := c.client.recv(_RECV):
                c.upstream.sendall(data)
                with self._lock:
                    self.bytes_up += len(data)
            with contextlib.suppress(OSError):
                c.upstream.shutdown(socket.SHUT_WR)  # pass the client's FIN on
            self._end(c, error=False)
        except OSError:
            self._end(c, error=True)

    def _down(self, c: _Conn) -> None:
        credit, last = float(self.burst), time.monotonic()  # a token bucket: at most a burst saved up
        try:
            while data := c.upstream.recv(_RECV):
                if self.rate is not None:
                    now = time.monotonic()
                    credit = min(float(self.burst), credit + (now - last) * self.rate) - len(data)
                    last = now
                    if credit < 0:
                        time.sleep(-credit / self.rate)
                view = memoryview(data)
                while view:
                    room = self._wait_for_reader(c)
                    n = c.client.send(view[:room])
                    view = view[n:]
                    c.sent += n
                    with self._lock:
                        self.bytes_down_forwarded += n
            with contextlib.suppress(OSError):
                c.client.shutdown(socket.SHUT_WR)  # pass upstream's FIN on, after the data
                c.fin_sent = True
            self._end(c, error=False)
        except OSError:
            self._end(c, error=True)

    def _wait_for_reader(self, c: _Conn) -> int:
        """Wait until the client has read enough; return how many bytes may be sent now."""
        delay = 0.0001
        while True:
            if c.dead:
                raise ConnectionAbortedError("connection cut")
            unread = c.unread()
            if unread is None:
                raise ConnectionResetError("client socket gone")
            if unread <= MAX_UNREAD - MIN_SEND:
                return MAX_UNREAD - unread
            time.sleep(delay)
            delay = min(delay * 2, 0.004)

    def _end(self, c: _Conn, error: bool) -> None:
        """One direction is over. On an error cut the other direction too (without sending anything to
        the client); the last direction to end settles the count and closes both sockets."""
        if error:
            c.dead = True
            with contextlib.suppress(OSError):
                c.upstream.shutdown(socket.SHUT_RDWR)
            with contextlib.suppress(OSError):
                c.client.shutdown(socket.SHUT_RD)  # wakes a blocked recv, queues no FIN
        with self._lock:
            c.ends += 1
            if c.ends < 2:
                return
            self._conns.discard(c)
        outq = _outq(c.client)
        if c.fin_sent and outq:
            outq -= 1
        delivered = max(0, c.sent - outq)
        with self._lock:
            self._down_closed += delivered
            self._down_closed_by_label[c.label] = self._down_closed_by_label.get(c.label, 0) + delivered
        for s in (c.client, c.upstream):
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)
            s.close()
