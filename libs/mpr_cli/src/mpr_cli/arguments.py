"""The command line: its commands and options (``mpr --help``)."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from mpr_common.events import JOB_KINDS, KEEP_IFS, PRIORITIES

DESCRIPTION = """mpr — upload media, scan, submit jobs, watch them, list assets and jobs; templates, rules, webhooks,
queues (pause, resume), retries, dead letters and the live event stream.

Settings from the environment: MPR_API_URL (default http://127.0.0.1:8000), MPR_TOKEN (bearer
token), and for uploads the seed's S3 variables (S3_ENDPOINT_URL, S3_BUCKET_IN, AWS_*).
"""


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="mpr", description=DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--api-url", default=os.environ.get("MPR_API_URL", "http://127.0.0.1:8000"))
    p.add_argument("--token", default=os.environ.get("MPR_TOKEN"))
    sub = p.add_subparsers(dest="command", required=True)
    _media_and_jobs(sub)
    _resources(sub)
    _control(sub)
    _events(sub)
    return p


def _media_and_jobs(sub: argparse._SubParsersAction) -> None:
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
    sm.add_argument(
        "--keep-if", choices=KEEP_IFS, help="transcode, trim: keep the output only if smaller/better"
    )
    sm.add_argument(
        "--min-psnr", type=float, help="transcode, trim: keep the output only at this mean PSNR (dB)"
    )
    sm.add_argument("--min-ssim", type=float, help="transcode, trim: keep the output only at this mean SSIM")
    sm.add_argument("--watch", action="store_true", help="show a progress bar until the job ends")
    w = sub.add_parser("watch", help="progress bar of one job until it ends (exit 1 if it failed)")
    w.add_argument("job_id")
    ls = sub.add_parser("list", help="list assets or jobs")
    ls.add_argument("what", choices=["assets", "jobs"])
    ls.add_argument("--limit", type=int, default=50)
    ls.add_argument("--status")
    ls.add_argument("--prefix")


def _resources(sub: argparse._SubParsersAction) -> None:
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


def _control(sub: argparse._SubParsersAction) -> None:
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


def _events(sub: argparse._SubParsersAction) -> None:
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
