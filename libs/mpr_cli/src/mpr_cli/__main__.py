"""mpr — upload media, scan, submit jobs, watch them, list assets and jobs.

Settings from the environment: MPR_API_URL (default http://127.0.0.1:8000), MPR_TOKEN (bearer
token), and for uploads the seed's S3 variables (S3_ENDPOINT_URL, S3_BUCKET_IN, AWS_*).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import httpx
from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TaskProgressColumn,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)
from rich.table import Table

from mpr_common.keys import InvalidKeyError, validate_key
from mpr_common.settings import S3Settings
from mpr_common.storage import get_s3_client, guess_content_type

TERMINAL = ("completed", "failed", "cancelled")


class Cli:
    def __init__(self, api_url: str, token: str | None, console: Console) -> None:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self.http = httpx.Client(base_url=api_url.rstrip("/"), headers=headers, timeout=120)
        self.out = console

    def call(self, method: str, path: str, **kw) -> dict:
        try:
            r = self.http.request(method, path, **kw)
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
    sm.add_argument("kind", choices=["transcode", "trim", "thumbnail", "audio", "hls"])
    sm.add_argument("source_key")
    sm.add_argument("--preset")
    sm.add_argument("--start", type=float)
    sm.add_argument("--end", type=float)
    sm.add_argument("--output-key")
    sm.add_argument("--job-id")
    sm.add_argument("--watch", action="store_true", help="show a progress bar until the job ends")
    w = sub.add_parser("watch", help="progress bar of one job until it ends (exit 1 if it failed)")
    w.add_argument("job_id")
    ls = sub.add_parser("list", help="list assets or jobs")
    ls.add_argument("what", choices=["assets", "jobs"])
    ls.add_argument("--limit", type=int, default=50)
    ls.add_argument("--status")
    ls.add_argument("--prefix")
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
    return cli.list(args.what, args.limit, args.status, args.prefix)


if __name__ == "__main__":
    sys.exit(main())
