"""``mpr ARGS`` through the relay listening at SOCKET (see mpr_relay.py): ``python -I -S
mpr_relay_client.py SOCKET ARGS``. The standard library only, so that it costs milliseconds, not the
CLI's imports."""

import json
import os
import socket
import sys


def main(path: str, args: list[str]) -> int:
    with socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET) as relay:
        relay.connect(path)
        request = {"args": args, "env": dict(os.environ), "cwd": os.getcwd()}
        socket.send_fds(relay, [json.dumps(request).encode()], [0, 1, 2])
        answer = relay.recv(1 << 16)
    if not answer:
        print("mpr relay: no answer (the relay stopped)", file=sys.stderr)
        return 255
    code = json.loads(answer)["exit"]
    return code if code >= 0 else 128 - code  # killed by a signal: as a shell reports it


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[2:]))
