"""mpr — upload media, scan, submit jobs, watch them, list assets and jobs; templates, rules, webhooks,
queues (pause, resume), retries, dead letters and the live event stream.

Settings from the environment: MPR_API_URL (default http://127.0.0.1:8000), MPR_TOKEN (bearer
token), and for uploads the seed's S3 variables (S3_ENDPOINT_URL, S3_BUCKET_IN, AWS_*).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import httpx
from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TaskID,
    TaskProgressColumn,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)
from rich.table import Table

from mpr_common.events import JOB_KINDS, PRIORITIES
from mpr_common.keys import InvalidKeyError, validate_key

if TYPE_CHECKING:
    from mpr_common.settings import S3Settings

from .sse import messages

TERMINAL = ("completed", "failed", "cancelled")


class Cli:
    def __init__(
        self,
        api_url: str,
        token: str | None,
        console: Console,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self.http = httpx.Client(
            base_url=api_url.rstrip("/"), headers=headers, timeout=120, transport=transport
        )
        self.out = console

    def call(self, method: str, path: str, **kw) -> dict:
        try:
            r = self.http.request(method, path, **kw)
            if r.status_code == 204:
                return {}
        except httpx.HTTPError as exc:
            raise SystemExit(f"mpr: cannot reach the API at {self.http.base_url}: {exc}") from None
        if r.status_code >= 400:
            try:
                detail = r.json().get("detail", r.text)
            except ValueError:
                detail = r.text
            raise SystemExit(f"mpr: {method} {path} → {r.status_code}: {detail}")
        return r.json()

    # --- commands ----------------------------------------------------------------------------
    def upload(self, files: list[Path], prefix: str, settings: S3Settings) -> int:
        # boto3 takes half of the CLI's start-up: imported by the one command that needs it
        from mpr_common.storage import get_s3_client, guess_content_type

        s3 = get_s3_client(settings)
        with Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            DownloadColumn(),
            TransferSpeedColumn(),
            TimeRemainingColumn(),
            console=self.out,
        ) as progress:
            for f in files:
                key = prefix + f.name
                try:
                    validate_key(key)
                except InvalidKeyError as exc:
                    raise SystemExit(f"mpr: {key}: {exc}") from None
                task = progress.add_task(key, total=f.stat().st_size)
                s3.upload_file(
                    str(f),
                    settings.bucket_in,
                    key,
                    ExtraArgs={"ContentType": guess_content_type(key)},
                    Callback=lambda n, t=task: progress.advance(t, n),
                )
        self.out.print(f"uploaded {len(files)} file(s) to s3://{settings.bucket_in}/{prefix}")
        return 0

    def scan(self, prefix: str) -> int:
        r = self.call("POST", "/api/assets/scan", json={"prefix": prefix})
        self.out.print(f"found {r['found']}, registered {r['registered']}, skipped {r['skipped']}")
        for key in r["files"]:
            self.out.print(f"  {key}")
        return 0

    def submit(self, args: argparse.Namespace) -> int:
        body = {
            k: v
            for k, v in {
                "kind": args.kind,
                "source_key": args.source_key,
                "preset": args.preset,
                "start": args.start,
                "end": args.end,
                "output_key": args.output_key,
                "job_id": args.job_id,
                "priority": args.priority,
                "template": args.template,
                "loudnorm": args.loudnorm or None,
                "storyboard": args.storyboard or None,
            }.items()
            if v is not None
        }
        job = self.call("POST", "/api/jobs", json=body)["job"]
        self.out.print(
            f"job {job['id']} {job['status']}: {job['kind']} {job['source_key']} → {job['output_key']}"
        )
        return self.watch(job["id"]) if args.watch else 0

    def watch(self, job_id: str, interval: float = 0.5) -> int:
        with Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            TaskProgressColumn(),
            TextColumn("{task.fields[status]} {task.fields[speed]}"),
            console=self.out,
        ) as progress:
            task = progress.add_task(f"job {job_id}", total=100, status="", speed="")
            while True:
                out = self.call("GET", f"/api/jobs/{job_id}")
                job = out["job"]
                speed = f"{job['speed']:.1f}x" if job.get("speed") else ""
                progress.update(task, completed=job["progress"], status=job["status"], speed=speed)
                if job["status"] in TERMINAL:
                    break
                time.sleep(interval)
        if job["status"] == "completed":
            self.out.print(
                f"completed: s3://{job['output_bucket']}/{job['output_key']} ({job['output_size']} bytes)"
            )
            if out.get("output_url"):
                self.out.print(out["output_url"], soft_wrap=True)
            return 0
        self.out.print(f"{job['status']}: {job.get('error') or ''}")
        return 1

    def list(self, what: str, limit: int, status: str | None, prefix: str | None) -> int:
        if what == "assets":
            params = {"limit": limit, **({"prefix": prefix} if prefix else {})}
            page = self.call("GET", "/api/assets", params=params)
            table = Table(
                "key", "size", "duration", "video", "audio", "probe", title=f"{page['total']} assets"
            )
            for a in page["items"]:
                info = a.get("info") or {}
                video = (
                    f"{info.get('video_codec')} {info.get('width')}x{info.get('height')}"
                    if info.get("video_codec")
                    else ""
                )
                table.add_row(
                    a["key"],
                    str(a["size"]),
                    f"{info.get('duration') or ''}",
                    video,
                    info.get("audio_codec") or "",
                    a["probe_status"],
                )
        else:
            params = {"limit": limit, **({"status": status} if status else {})}
            page = self.call("GET", "/api/jobs", params=params)
            table = Table(title=f"{page['total']} jobs")
            # Ids are pasted into other commands: never cut or wrapped, whatever the width.
            width = max((len(item["job"]["id"]) for item in page["items"]), default=2)
            table.add_column("id", no_wrap=True, min_width=width)
            for name in ("kind", "status", "progress", "source", "output", "error"):
                table.add_column(name)
            for item in page["items"]:
                j = item["job"]
                table.add_row(
                    j["id"],
                    j["kind"],
                    j["status"],
                    f"{j['progress']:.0f}%",
                    j["source_key"],
                    j.get("output_key") or "",
                    (j.get("error") or "")[:60],
                )
        self.out.print(table)
        return 0

    # --- automation and control -------------------------------------------------------------
    def show(self, data: object) -> int:
        self.out.print_json(json.dumps(data))
        return 0

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

    def retry(self, args: argparse.Namespace) -> int:
        if args.job_id:
            job = self.call("POST", f"/api/jobs/{args.job_id}/retry")["job"]
            self.out.print(f"job {job['id']} {job['status']} (retry {job.get('retries', '')})")
            return self.watch(job["id"]) if args.watch else 0
        flt = {
            k: v for k, v in {"status": args.status, "reason": args.reason, "kind": args.kind}.items() if v
        }
        out = self.call("POST", "/api/retries", json={**flt, "limit": args.limit})
        return self.show(out)

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

    def sse(self, params: dict, after: str | None = None) -> Iterator[tuple[str | None, str, dict]]:
        """(event id, event type, data) from GET /api/events; reconnects with Last-Event-ID, losing
        nothing. Once the stream is open (and after every reconnection) it yields ``(None, OPENED, {})``:
        from then on no event is missed, so what was read before it can be checked against the API."""
        last: str | None = after
        while True:
            headers = {"Last-Event-ID": last} if last else {}
            try:
                with self.http.stream(
                    "GET", "/api/events", params=params, headers=headers, timeout=None
                ) as r:
                    if r.status_code >= 400:
                        raise SystemExit(f"mpr: GET /api/events → {r.status_code}: {r.read().decode()}")
                    yield None, OPENED, {}
                    for event_id, kind, event in messages(r.iter_lines()):
                        last = event_id or last
                        yield event_id, kind, event
            except httpx.HTTPError:
                time.sleep(1)  # the API restarted: resume after the last event seen

    def events(self, args: argparse.Namespace) -> int:
        params: dict = {k: v for k, v in {"job_id": args.job, "kind": args.kind}.items() if v}
        if not args.follow:
            params["types"] = "job.completed,job.failed,job.cancelled,asset.registered"
        # From a cursor, the stream replays how the jobs ended: nothing to ask the API first.
        follow = Follow(self, args.job or [], args.exit_after, check=not args.after)
        if not self.out.is_terminal:  # piped or redirected: a line per event, no bars
            return follow.run(self.sse(params, args.after), None)
        with Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            TaskProgressColumn(),
            TextColumn("{task.fields[status]} {task.fields[eta]}"),
            console=self.out,
        ) as progress:
            return follow.run(self.sse(params, args.after), progress)


OPENED = "stream.opened"  # not an event of the API: the CLI's mark that its stream is open
ENDED = {"job.completed": "completed", "job.failed": "failed", "job.cancelled": "cancelled"}


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


class Follow:
    """What ``mpr events`` shows and when it ends: a bar per job on a terminal (a package's children
    under it, the package's own bar from their weighted progress), else one line per event; it ends
    when every ``--job`` has ended (at once if they had before the stream opened), or after
    ``--exit-after`` jobs have ended."""

    def __init__(self, cli: Cli, jobs: list[str], exit_after: int | None, check: bool = True) -> None:
        self.cli = cli
        self.jobs = set(jobs)
        self.exit_after = exit_after
        self.ended: dict[str, str] = {}  # top-level job id -> how it ended
        self.bars: dict[str, TaskID] = {}
        self.child_eta: dict[str, dict[str, float]] = {}  # package -> child -> its ETA
        self.refreshed: dict[str, float] = {}  # package -> when its progress was last read
        self.checked = not check

    def run(self, stream: Iterator[tuple[str | None, str, dict]], progress: Progress | None) -> int:
        self.progress = progress
        for event_id, kind, ev in stream:
            if kind == OPENED:
                if not self.checked:
                    self.checked = True
                    self.check_jobs()
            else:
                self.show(event_id, kind, ev)
                if kind in ENDED and not ev.get("parent_id"):
                    self.ended[ev["job_id"]] = ENDED[kind]
            if self.done():
                break
        else:
            return 0
        return 0 if all(how == "completed" for how in self.ended.values()) else 1

    def done(self) -> bool:
        if self.jobs:
            return self.jobs <= set(self.ended)
        return self.exit_after is not None and len(self.ended) >= self.exit_after

    def check_jobs(self) -> None:
        """The jobs asked for that ended before the stream opened: their end is shown from the API
        (an unknown one may just not be queued yet: its events come)."""
        for job_id in sorted(self.jobs):
            r = self.cli.http.get(f"/api/jobs/{job_id}")
            if r.status_code == 404:
                continue
            if r.status_code >= 400:
                raise SystemExit(f"mpr: GET /api/jobs/{job_id} → {r.status_code}: {r.text}")
            job = r.json()["job"]
            if job["status"] in TERMINAL:
                event = {**job, "job_id": job["id"]}
                self.show(None, f"job.{job['status']}", event)
                self.ended[job_id] = job["status"]

    def print(self, text: str) -> None:
        console = self.progress.console if self.progress is not None else self.cli.out
        console.print(text, markup=False, highlight=False, soft_wrap=True)

    def show(self, event_id: str | None, kind: str, ev: dict) -> None:
        if kind == "reset":  # the cursor was older than what the streams keep: what is kept follows
            self.print(f"{event_id or '-'} reset: {ev.get('reason') or ''}")
            return
        if not kind.startswith("job."):
            if kind == "asset.registered" or self.progress is None:
                self.print(f"{event_id or '-'} {kind} {ev.get('bucket')}/{ev.get('key')}")
            return
        job_id, parent = ev["job_id"], ev.get("parent_id")
        done = 100.0 if kind == "job.completed" else float(ev.get("progress") or 0)
        eta = ev.get("eta")
        status = ev.get("status") or kind[4:]
        if parent:
            self.child_eta.setdefault(parent, {})
            if kind in ENDED or eta is None:
                self.child_eta[parent].pop(job_id, None)
            else:
                self.child_eta[parent][job_id] = eta
        if self.progress is None:
            line = f"{event_id or '-'} {kind} {job_id} {ev.get('kind') or ''} {status} {done:.0f}%"
            if eta is not None and kind not in ENDED:
                line += f" ETA {eta:.0f}s"
            if parent:
                line += f" (package {parent})"
            if kind in ("job.failed", "job.cancelled") and ev.get("error"):
                line += f": {ev['error']}"
            self.print(line)
            return
        if parent:
            self.bar(parent, "package", "")
            # a child's id is its package's and its name (<package>-720p, <package>-storyboard)
            name = job_id[len(parent) + 1 :] if job_id.startswith(f"{parent}-") else ev.get("kind")
            self.bar(job_id, f"  └ {name or 'part'}", parent)
            self.update(job_id, done, status, eta)
            self.refresh_package(parent, kind in ENDED)
        else:
            self.bar(job_id, ev.get("kind") or "job", "")
            if ev.get("kind") == "package" and kind not in ENDED:
                self.refresh_package(job_id, True)
            else:
                self.update(job_id, done, status, eta)
        if kind in ("job.failed", "job.cancelled"):
            self.print(f"{job_id} {kind[4:]}: {ev.get('error') or ''}")

    def bar(self, job_id: str, label: str, parent: str) -> None:
        assert self.progress is not None
        if job_id not in self.bars:
            self.bars[job_id] = self.progress.add_task(
                f"{label} {job_id}", total=100, status="", eta="", parent=parent
            )

    def update(self, job_id: str, done: float, status: str, eta: float | None) -> None:
        assert self.progress is not None
        text = f"ETA {eta:.0f}s" if eta is not None and status not in TERMINAL else ""
        self.progress.update(self.bars[job_id], completed=done, status=status, eta=text)

    def refresh_package(self, package: str, now: bool) -> None:
        """A package's bar: its ETA the longest of its running children's; its progress as the API
        weighs its children (read at most once a second, and whenever a child ends)."""
        assert self.progress is not None
        etas = self.child_eta.get(package, {}).values()
        eta = max(etas, default=None)
        self.progress.update(self.bars[package], eta=f"ETA {eta:.0f}s" if eta is not None else "")
        if not now and time.monotonic() - self.refreshed.get(package, 0.0) < 1.0:
            return
        self.refreshed[package] = time.monotonic()
        r = self.cli.http.get(f"/api/jobs/{package}")
        if r.status_code == 200:
            job = r.json()["job"]
            self.update(package, float(job["progress"] or 0), job["status"], eta)


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="mpr", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--api-url", default=os.environ.get("MPR_API_URL", "http://127.0.0.1:8000"))
    p.add_argument("--token", default=os.environ.get("MPR_TOKEN"))
    sub = p.add_subparsers(dest="command", required=True)
    up = sub.add_parser("upload", help="upload files to S3_BUCKET_IN")
    up.add_argument("files", nargs="+", type=Path)
    up.add_argument("--prefix", default="", help="key prefix, e.g. 'shows/ep1/'")
    sc = sub.add_parser("scan", help="scan S3_BUCKET_IN and register new media")
    sc.add_argument("--prefix", default="")
    sm = sub.add_parser("submit", help="submit a job")
    sm.add_argument("kind", choices=[k for k in JOB_KINDS if k != "rendition"])
    sm.add_argument("source_key")
    sm.add_argument("--preset")
    sm.add_argument("--start", type=float)
    sm.add_argument("--end", type=float)
    sm.add_argument("--output-key")
    sm.add_argument("--job-id")
    sm.add_argument("--priority", choices=PRIORITIES)
    sm.add_argument("--template", help="a stored job template (name or name@revision)")
    sm.add_argument("--loudnorm", action="store_true", help="EBU R128 loudness normalisation")
    sm.add_argument("--storyboard", action="store_true", help="package: also a storyboard")
    sm.add_argument("--watch", action="store_true", help="show a progress bar until the job ends")
    w = sub.add_parser("watch", help="progress bar of one job until it ends (exit 1 if it failed)")
    w.add_argument("job_id")
    ls = sub.add_parser("list", help="list assets or jobs")
    ls.add_argument("what", choices=["assets", "jobs"])
    ls.add_argument("--limit", type=int, default=50)
    ls.add_argument("--status")
    ls.add_argument("--prefix")
    for name, singular in (("templates", "template"), ("rules", "rule"), ("webhooks", "webhook")):
        r = sub.add_parser(
            name, help=f"{singular}s: list, get, create, put, delete (JSON on stdin or --file)"
        )
        r.add_argument("action", choices=["list", "get", "create", "put", "delete"])
        r.add_argument("name", nargs="?", help=f"the {singular}'s name or id")
        r.add_argument(
            "--file",
            metavar="FILE",
            help=f"the {singular} as JSON (default: stdin), e.g. "
            + {
                "templates": """'{"kind": "package", "preset": "abr-h264", "storyboard": true}' """
                "(also output_key, a pattern such as {dir}/web/{stem}.mp4; loudnorm, priority, start, "
                "end, description)",
                "rules": """'{"id": "web-hd", "template": "web", "prefix": "incoming/"}'""",
                "webhooks": """'{"url": "https://hooks.example.com/mpr", "types": ["job.completed"]}'""",
            }[name]
            + "; the fields are those of the REST body (docs/automation.md, docs/webhooks.md)",
        )
        if name == "templates":
            r.add_argument("--revision", type=int, help="an earlier version")
    dr = sub.add_parser("dry-run", help="what a rule would start now")
    dr.add_argument("rule_id")
    rt = sub.add_parser("retry", help="run a failed job again, or every failed job matching a filter")
    rt.add_argument("job_id", nargs="?")
    rt.add_argument("--status", default="failed")
    rt.add_argument("--reason")
    rt.add_argument("--kind")
    rt.add_argument("--limit", type=int, default=100)
    rt.add_argument("--watch", action="store_true")
    for action in ("pause", "resume"):
        q = sub.add_parser(action, help=f"{action} a queue class (or every class)")
        q.add_argument("cls", nargs="?", choices=PRIORITIES)
    sub.add_parser("queues", help="queue classes: paused, pending, in flight")
    lg = sub.add_parser("log", help="a job's attempts: worker, duration, outcome, FFmpeg's log")
    lg.add_argument("job_id")
    dl = sub.add_parser("dead-letters", help="list dead letters, or replay one")
    dl.add_argument("--replay", type=int, metavar="SEQ")
    dl.add_argument("--limit", type=int, default=50)
    ev = sub.add_parser(
        "events",
        help="the live event stream: progress bars with --follow on a terminal, else a line per event "
        "(event id, type, job, kind, status, progress, ETA)",
    )
    ev.add_argument("--follow", action="store_true", help="progress of every job, not only how they end")
    ev.add_argument(
        "--job",
        action="append",
        help="only this job and a package's children (repeatable); exits once each has ended, at once "
        "if it had already (status 1 if one failed)",
    )
    ev.add_argument("--kind", choices=JOB_KINDS)
    ev.add_argument(
        "--exit-after",
        type=int,
        metavar="N",
        help="exit once N jobs (not counting a package's children) have ended (status 1 if one failed)",
    )
    ev.add_argument(
        "--after",
        metavar="EVENT_ID",
        help="start right after this event (an id a previous run printed) instead of now",
    )
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    cli = Cli(args.api_url, args.token, Console())
    if args.command == "upload":
        missing = [str(f) for f in args.files if not f.is_file()]
        if missing:
            raise SystemExit(f"mpr: no such file: {', '.join(missing)}")
        from mpr_common.settings import S3Settings

        return cli.upload(args.files, args.prefix, S3Settings.from_env())
    if args.command == "scan":
        return cli.scan(args.prefix)
    if args.command == "submit":
        return cli.submit(args)
    if args.command == "watch":
        return cli.watch(args.job_id)
    if args.command in ("templates", "rules", "webhooks"):
        if args.action not in ("list", "create") and not args.name:
            raise SystemExit(f"mpr: {args.command} {args.action} needs a name")
        return cli.resource(args, f"/api/{args.command}")
    if args.command == "dry-run":
        return cli.dry_run(args.rule_id)
    if args.command == "retry":
        return cli.retry(args)
    if args.command in ("pause", "resume"):
        return cli.queues(args.command, args.cls)
    if args.command == "queues":
        return cli.queues("list", None)
    if args.command == "log":
        return cli.log(args.job_id)
    if args.command == "dead-letters":
        return cli.dead_letters(args.replay, args.limit)
    if args.command == "events":
        return cli.events(args)
    return cli.list(args.what, args.limit, args.status, args.prefix)


if __name__ == "__main__":
    sys.exit(main())
