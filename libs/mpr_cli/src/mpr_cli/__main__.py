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
from mpr_common.settings import S3Settings
from mpr_common.storage import get_s3_client, guess_content_type

from .sse import messages

TERMINAL = ("completed", "failed", "cancelled")


class Cli:
    def __init__(self, api_url: str, token: str | None, console: Console) -> None:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self.http = httpx.Client(base_url=api_url.rstrip("/"), headers=headers, timeout=120)
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
            table = Table(
                "id", "kind", "status", "progress", "source", "output", "error", title=f"{page['total']} jobs"
            )
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
        body = json.loads(Path(args.file).read_text() if args.file else sys.stdin.read())
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
            return self.show(self.call("GET", "/api/queues"))
        path = f"/api/queues/{cls}/{action}" if cls else f"/api/queues/{action}"
        return self.show(self.call("POST", path))

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

    def sse(self, params: dict) -> Iterator[tuple[str, dict]]:
        """(event type, data) from GET /api/events; reconnects with Last-Event-ID, losing nothing."""
        last: str | None = None
        while True:
            headers = {"Last-Event-ID": last} if last else {}
            try:
                with self.http.stream(
                    "GET", "/api/events", params=params, headers=headers, timeout=None
                ) as r:
                    if r.status_code >= 400:
                        raise SystemExit(f"mpr: GET /api/events → {r.status_code}: {r.read().decode()}")
                    for event_id, kind, event in messages(r.iter_lines()):
                        last = event_id or last
                        yield kind, event
            except httpx.HTTPError:
                time.sleep(1)  # the API restarted: resume after the last event seen

    def events(self, args: argparse.Namespace) -> int:
        params: dict = {k: v for k, v in {"job_id": args.job, "kind": args.kind}.items() if v}
        if not args.follow:
            params["types"] = "job.completed,job.failed,job.cancelled,asset.registered"
        with Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            TaskProgressColumn(),
            TextColumn("{task.fields[status]} {task.fields[eta]}"),
            console=self.out,
        ) as progress:
            bars: dict[str, TaskID] = {}
            for kind, ev in self.sse(params):
                if not kind.startswith("job."):
                    progress.console.print(f"{kind} {ev.get('bucket')}/{ev.get('key')}")
                    continue
                job_id = ev["job_id"]
                if job_id not in bars:
                    bars[job_id] = progress.add_task(
                        f"{ev.get('kind') or 'job'} {job_id}", total=100, status="", eta=""
                    )
                eta = f"ETA {ev['eta']:.0f}s" if ev.get("eta") is not None else ""
                done = 100 if kind == "job.completed" else ev.get("progress") or 0
                progress.update(bars[job_id], completed=done, status=ev.get("status") or kind[4:], eta=eta)
                if kind in ("job.failed", "job.cancelled"):
                    progress.console.print(f"{job_id} {kind[4:]}: {ev.get('error') or ''}")
                if (
                    args.job
                    and kind in ("job.completed", "job.failed", "job.cancelled")
                    and job_id in args.job
                ):
                    return 0 if kind == "job.completed" else 1
        return 0


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
        r.add_argument("--file", help="JSON body (default: stdin)")
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
    ev = sub.add_parser("events", help="the live event stream (progress bars with --follow)")
    ev.add_argument("--follow", action="store_true", help="progress of every job, not only how they end")
    ev.add_argument("--job", action="append", help="only this job (repeatable); exits when it ends")
    ev.add_argument("--kind", choices=JOB_KINDS)
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    cli = Cli(args.api_url, args.token, Console())
    if args.command == "upload":
        missing = [str(f) for f in args.files if not f.is_file()]
        if missing:
            raise SystemExit(f"mpr: no such file: {', '.join(missing)}")
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
