"""Media and jobs: upload, scan, submit, watch, retry, and the tables of assets and jobs."""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import TYPE_CHECKING

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

from mpr_common.job_status import is_terminal
from mpr_common.keys import InvalidKeyError, validate_key

from .client import ApiClient

if TYPE_CHECKING:
    from mpr_common.settings import S3Settings


class JobCommands(ApiClient):
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
                "keep_if": args.keep_if,
                "min_psnr": args.min_psnr,
                "min_ssim": args.min_ssim,
            }.items()
            if v is not None
        }
        job = self.call("POST", "/api/jobs", json=body)["job"]
        self.out.print(
            f"job {job['id']} {job['status']}: {job['kind']} {job['source_key']} → {job['output_key']}"
        )
        return self.watch(job["id"]) if args.watch else 0

    def watch(self, job_id: str, interval: float = 0.5, retries: int = 0) -> int:
        """Follow the job until it ends; ``retries``: the run to follow (a job just retried may still
        read as its last run ended until the catalog has recorded the retry)."""
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
                if is_terminal(job["status"]) and (job.get("retries") or 0) >= retries:
                    break
                time.sleep(interval)
        if job["status"] == "completed" and job.get("outcome") == "not_kept":  # judged, not a failure
            detail = (job.get("keep") or {}).get("detail", "")
            self.out.print(f"completed, not kept (nothing written to {job['output_key']}): {detail}")
            return 0
        if job["status"] == "completed":
            self.out.print(
                f"completed: s3://{job['output_bucket']}/{job['output_key']} ({job['output_size']} bytes)"
            )
            if out.get("output_url"):
                self.out.print(out["output_url"], soft_wrap=True)
            return 0
        self.out.print(f"{job['status']}: {job.get('error') or ''}")
        return 1

    def retry(self, args: argparse.Namespace) -> int:
        if args.job_id:
            job = self.call("POST", f"/api/jobs/{args.job_id}/retry")["job"]
            self.out.print(f"job {job['id']} {job['status']} (retry {job.get('retries', '')})")
            return self.watch(job["id"], retries=job.get("retries") or 0) if args.watch else 0
        flt = {
            k: v for k, v in {"status": args.status, "reason": args.reason, "kind": args.kind}.items() if v
        }
        out = self.call("POST", "/api/retries", json={**flt, "limit": args.limit})
        return self.show(out)

    def list(self, what: str, limit: int, status: str | None, prefix: str | None) -> int:
        table = self._assets(limit, prefix) if what == "assets" else self._jobs(limit, status)
        self.out.print(table)
        return 0

    def _assets(self, limit: int, prefix: str | None) -> Table:
        params = {"limit": limit, **({"prefix": prefix} if prefix else {})}
        page = self.call("GET", "/api/assets", params=params)
        table = Table("key", "size", "duration", "video", "audio", "probe", title=f"{page['total']} assets")
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
        return table

    def _jobs(self, limit: int, status: str | None) -> Table:
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
        return table
