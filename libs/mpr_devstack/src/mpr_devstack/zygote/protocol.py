"""Messages between a process that starts services and its launcher: one JSON object per datagram of a
Unix ``SOCK_SEQPACKET`` socket, file descriptors passed beside it (``SCM_RIGHTS``).

The requester sends on the launcher's control socket ``{"module", "args", "env", "cwd",
"process_group"}`` with four descriptors: the socket the answers come back on, then the child's stdin,
stdout and stderr. On that answer socket the launcher sends ``{"pid"}`` with a pidfd of the child (or
``{"refused": reason}``: start it some other way), and once it has reaped the child ``{"exit": code}``
(``code`` as ``subprocess.Popen.returncode``: a signal is its negative number)."""

from __future__ import annotations

import json
import os
import socket
from typing import Any

MAX_MESSAGE = 1 << 20  # a request carries a whole environment: a few KiB, far below this
REQUEST_FDS = 4  # answer socket, stdin, stdout, stderr

Message = dict[str, Any]


def socket_pair() -> tuple[socket.socket, socket.socket]:
    return socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)


def send(sock: socket.socket, message: Message, fds: list[int] | None = None) -> None:
    socket.send_fds(sock, [json.dumps(message).encode()], fds or [])


def receive(sock: socket.socket, max_fds: int = REQUEST_FDS) -> tuple[Message | None, list[int]]:
    """The next message and the descriptors it carried; ``(None, [])`` once the peer has closed."""
    data, fds, flags, _ = socket.recv_fds(sock, MAX_MESSAGE, max_fds, socket.MSG_CMSG_CLOEXEC)
    if flags & (socket.MSG_TRUNC | socket.MSG_CTRUNC):
        for fd in fds:
            os.close(fd)
        raise OSError("truncated message from the launcher's peer")
    if not data:
        for fd in fds:
            os.close(fd)
        return None, []
    return json.loads(data), fds
