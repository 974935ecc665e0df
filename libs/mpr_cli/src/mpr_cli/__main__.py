"""mpr: the command line of MPR (``python -m mpr_cli``, or the ``mpr`` script). The commands live in
``job_commands``, ``control_commands`` and ``follow``; their options in ``arguments``."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable

from rich.console import Console

from .arguments import parser
from .cli import Cli


def _upload(cli: Cli, args: argparse.Namespace) -> int:
    missing = [str(f) for f in args.files if not f.is_file()]
    if missing:
        raise SystemExit(f"mpr: no such file: {', '.join(missing)}")
    from mpr_common.settings import S3Settings

    return cli.upload(args.files, args.prefix, S3Settings.from_env())


def _resource(cli: Cli, args: argparse.Namespace) -> int:
    if args.action not in ("list", "create") and not args.name:
        raise SystemExit(f"mpr: {args.command} {args.action} needs a name")
    return cli.resource(args, f"/api/{args.command}")


Command = Callable[[Cli, argparse.Namespace], int]
COMMANDS: dict[str, Command] = {
    "upload": _upload,
    "scan": lambda cli, a: cli.scan(a.prefix),
    "submit": lambda cli, a: cli.submit(a),
    "watch": lambda cli, a: cli.watch(a.job_id),
    "list": lambda cli, a: cli.list(a.what, a.limit, a.status, a.prefix),
    "templates": _resource,
    "rules": _resource,
    "webhooks": _resource,
    "dry-run": lambda cli, a: cli.dry_run(a.rule_id),
    "retry": lambda cli, a: cli.retry(a),
    "pause": lambda cli, a: cli.queues("pause", a.cls),
    "resume": lambda cli, a: cli.queues("resume", a.cls),
    "queues": lambda cli, a: cli.queues("list", None),
    "log": lambda cli, a: cli.log(a.job_id),
    "dead-letters": lambda cli, a: cli.dead_letters(a.replay, a.limit),
    "events": lambda cli, a: cli.events(a),
}


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    cli = Cli(args.api_url, args.token, Console())
    return COMMANDS[args.command](cli, args)


if __name__ == "__main__":
    sys.exit(main())
