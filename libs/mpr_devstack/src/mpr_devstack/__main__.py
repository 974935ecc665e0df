"""`mpr-dev`: start the whole system on embedded defaults; Ctrl-C stops everything."""

from __future__ import annotations

import argparse
import signal
import sys
import time
from pathlib import Path

from .stack import DEV_API_TOKEN, Stack


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="mpr-dev", description=__doc__)
    p.add_argument(
        "--workdir", default=".mpr", help="JetStream store, SQLite database and logs (default .mpr)"
    )
    p.add_argument("--api-port", type=int, default=8000)
    p.add_argument("--nats-port", type=int, default=4222)
    p.add_argument("--s3-port", type=int, default=9000)
    p.add_argument("--transcoders", type=int, default=2, help="transcoder replicas (default 2)")
    p.add_argument("--verbose", action="store_true", help="service logs on this terminal instead of files")
    args = p.parse_args(argv)

    stack = Stack(
        Path(args.workdir).resolve(),
        nats_port=args.nats_port,
        s3_port=args.s3_port,
        api_port=args.api_port,
        transcoders=args.transcoders,
        quiet=not args.verbose,
    )
    stopping = False

    def on_signal(signum, _frame):
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, on_signal)
    try:
        stack.start()
        env = stack.env()
        print(
            f"""
MPR is running.
  API          {stack.api_url}   (OpenAPI: {stack.api_url}/schema, GraphQL: {stack.api_url}/graphql)
  token        Authorization: Bearer {DEV_API_TOKEN}
  NATS         {env["NATS_URL"]}  (JetStream store: {stack.workdir / "jetstream"})
  S3 (moto)    {env["S3_ENDPOINT_URL"]}  buckets {env["S3_BUCKET_IN"]}, {env["S3_BUCKET_OUT"]}
  upload       aws --endpoint-url {env["S3_ENDPOINT_URL"]} s3 cp video.mp4 s3://{env["S3_BUCKET_IN"]}/
  logs         {stack.workdir / "logs"}
Ctrl-C stops everything.""",
            flush=True,
        )
        while not stopping:
            for proc in stack.services.values():
                if not proc.alive():
                    print(
                        f"{proc.name} exited with {proc.popen.returncode}; see {proc.log_path}",
                        file=sys.stderr,
                    )
                    stopping = True
            time.sleep(0.5)
    except KeyboardInterrupt:
        pass
    finally:
        print("\nstopping…", flush=True)
        stack.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
