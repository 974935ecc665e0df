"""Automation and control: templates, rules and webhooks (JSON in, JSON out), dry runs, queue classes,
a job's log and the dead letters."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from rich.table import Table

from .client import ApiClient


class ControlCommands(ApiClient):
    def resource(self, args: argparse.Namespace, base: str) -> int:
        """templates / rules / webhooks: list, get, put (JSON from --file or stdin), delete."""
        if args.action == "list":
            return self.show(self.call("GET", base))
        if args.action == "get":
            params = {"revision": args.revision} if getattr(args, "revision", None) else None
            return self.show(self.call("GET", f"{base}/{args.name}", params=params))
        if args.action == "delete":
            self.call("DELETE", f"{base}/{args.name}")
            self.out.print(f"deleted {args.name}")
            return 0
        body = read_body(args.file)
        if args.action == "create":
            return self.show(self.call("POST", base, json=body))
        return self.show(self.call("PUT", f"{base}/{args.name}", json=body))

    def dry_run(self, rule_id: str) -> int:
        return self.show(self.call("POST", f"/api/rules/{rule_id}/dry-run"))

    def queues(self, action: str, cls: str | None) -> int:
        if action == "list":
            return self.queue_table(self.call("GET", "/api/queues"))
        path = f"/api/queues/{cls}/{action}" if cls else f"/api/queues/{action}"
        out = self.call("POST", path)
        self.out.print(f"{cls or 'every class'} {'paused' if action == 'pause' else 'resumed'}")
        del out  # the new state is in GET /api/queues (mpr queues)
        return 0

    def queue_table(self, out: dict) -> int:
        table = Table("class", "state", "pending", "in flight", "oldest wait")
        for q in out["queues"]:
            wait = q.get("oldest_waiting_seconds")
            table.add_row(
                q["priority"],
                "paused" if q["paused"] else "running",
                "" if q["pending"] is None else str(q["pending"]),
                "" if q["in_flight"] is None else str(q["in_flight"]),
                "" if wait is None else f"{wait:.0f}s",
            )
        self.out.print(table)
        return 0

    def log(self, job_id: str) -> int:
        out = self.call("GET", f"/api/jobs/{job_id}/log")
        for a in out.get("attempts", []):
            took = (a.get("ended_at") or 0) - (a.get("started_at") or 0)
            self.out.print(
                f"[bold]attempt {a['attempt']}[/bold] (retry {a.get('retry', 0)}) on {a.get('worker')}: "
                f"{a['outcome']} after {took:.1f}s {a.get('reason') or ''} {a.get('error') or ''}"
            )
            if a.get("log"):
                self.out.print(a["log"], markup=False, highlight=False)
        return 0

    def dead_letters(self, replay: int | None, limit: int) -> int:
        if replay is not None:
            return self.show(self.call("POST", f"/api/dead-letters/{replay}/replay"))
        return self.show(self.call("GET", "/api/dead-letters", params={"limit": limit}))


def read_body(file: str | None) -> object:
    """The JSON body of a templates / rules / webhooks write, from ``file`` or stdin; a one-line error
    and exit status 2 (a usage error) when it is missing or not JSON."""
    where = file or "stdin"
    try:
        text = Path(file).read_text() if file else sys.stdin.read()
    except (OSError, UnicodeDecodeError) as exc:
        print(f"mpr: cannot read {where}: {getattr(exc, 'strerror', None) or exc}", file=sys.stderr)
        raise SystemExit(2) from None
    try:
        return json.loads(text, parse_constant=_not_json)
    except ValueError as exc:  # JSONDecodeError, or NaN / Infinity, which JSON does not have
        print(f"mpr: {where} is not JSON: {exc}", file=sys.stderr)
        raise SystemExit(2) from None


def _not_json(name: str) -> object:
    raise ValueError(f"{name} is not a JSON value")
