"""`mpr-dev`: start the whole system on embedded defaults; Ctrl-C stops everything. A process that
dies on its own is restarted (with backoff when it keeps dying); S3 objects, the catalog and JetStream
are kept in the work dir, so a restart finds everything it had."""

from __future__ import annotations

import argparse
import contextlib
import signal
import sys
import time
from pathlib import Path

from .stack import DEV_ACCESS_KEY, DEV_API_TOKEN, DEV_SECRET_KEY, Stack


class _Stop(BaseException):
    """Raised by the signal handler to leave a start-up in progress (a KeyboardInterrupt without the
    traceback); a BaseException so that no ``except Exception`` on the way swallows it."""


def _say(text: str, file=None) -> None:
    # Stopping must go on when the terminal is gone (SIGHUP): printing would then raise EIO.
    with contextlib.suppress(OSError):
        print(text, file=file or sys.stdout, flush=True)


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="mpr-dev", description=__doc__)
    p.add_argument(
        "--workdir",
        default=".mpr",
        help="S3 objects, JetStream store, SQLite database and logs (default .mpr)",
    )
    p.add_argument("--api-port", type=int, default=8000)
    p.add_argument("--nats-port", type=int, default=4222)
    p.add_argument("--s3-port", type=int, default=9000)
    p.add_argument("--transcoders", type=int, default=2, help="transcoder replicas (default 2)")
    p.add_argument("--verbose", action="store_true", help="service logs on this terminal instead of files")
    return p


def _banner(stack: Stack) -> str:
    """What is running where, and the commands to use it."""
    assert stack.nats is not None
    env = stack.env()
    endpoint = env["S3_ENDPOINT_URL"]
    # No ~/.aws on a fresh machine: the upload commands need the dev credentials in the environment.
    creds = (
        f"AWS_ACCESS_KEY_ID={DEV_ACCESS_KEY} AWS_SECRET_ACCESS_KEY={DEV_SECRET_KEY} "
        f"AWS_DEFAULT_REGION={env['AWS_REGION']}"
    )
    return f"""
MPR is running.
  API          {stack.api_url}   (OpenAPI: {stack.api_url}/schema, GraphQL: {stack.api_url}/graphql)
  token        Authorization: Bearer {DEV_API_TOKEN}
  console      {stack.api_url}/console/   (sign in with {DEV_API_TOKEN})
  NATS         {env["NATS_URL"]}  (JetStream store: {stack.workdir / "jetstream"}; anonymous clients refused)
  publisher    {stack.nats.url_as("publisher")}
               (may only publish mpr.jobs.requested: give it to a service that submits jobs, which
                connects with inbox_prefix="_INBOX.publisher" to get its acks;
                every identity's password: {stack.workdir / "nats-passwords.json"})
  S3 (moto)    {endpoint}  buckets {env["S3_BUCKET_IN"]}, {env["S3_BUCKET_OUT"]} (objects kept in {stack.s3_dir})
  upload       export {creds} S3_ENDPOINT_URL={endpoint} MPR_API_URL={stack.api_url} MPR_TOKEN={DEV_API_TOKEN}
               aws --endpoint-url {endpoint} s3 cp video.mp4 s3://{env["S3_BUCKET_IN"]}/
               uv run mpr upload video.mp4   (the same with the mpr CLI)
  logs         {stack.workdir / "logs"}
  metrics      http://127.0.0.1:<port>/metrics, the API's too (never on its own port):
               {", ".join(f"{name} {port}" for name, port in stack.metrics_ports.items())}
A process that dies is restarted. Ctrl-C stops everything."""


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)

    stack = Stack(
        Path(args.workdir).resolve(),
        nats_port=args.nats_port,
        s3_port=args.s3_port,
        api_port=args.api_port,
        transcoders=args.transcoders,
        quiet=not args.verbose,
        persist_s3=True,
        # Plain processes, whatever MPR_PRELOAD says: each shows its own command line (ps, top, the
        # dev-command tests find them by it) and is this process's child.
        preload=False,
    )
    starting = True
    stopping = False  # set once we decided to stop: services exiting after that are expected

    def on_signal(signum, _frame):
        nonlocal stopping
        if stopping:
            return  # a second Ctrl-C must not break the shutdown under way
        stopping = True
        if starting:
            raise _Stop  # start() can wait minutes for a service on a busy machine: leave it now

    # Ctrl-C, kill and a closed terminal all stop the stack the same way, quietly, with status 0
    # (the children run in process groups of their own: the terminal's SIGINT or SIGHUP reach us alone).
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, on_signal)
    try:
        _say(stack.kept())
        stack.start()
        supervisor = stack.supervisor(lambda line: _say(line, sys.stderr))
        starting = False
        _say(_banner(stack))
        while not stopping:
            supervisor.poll()  # a process that died on its own is restarted, as k8s restarts a pod
            time.sleep(0.5)
    except _Stop:
        pass
    finally:
        starting = False
        stopping = True
        _say("\nstopping…")
        stack.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
