"""``mpr events``: the live event stream, as progress bars on a terminal or a line per event."""

from __future__ import annotations

import argparse
import time
from collections.abc import Iterator

from rich.progress import BarColumn, Progress, TaskID, TaskProgressColumn, TextColumn

from mpr_common.events import JOB_STATUSES
from mpr_common.job_status import is_terminal

from .client import OPENED, ApiClient

# The event of each way a job ends ("job.<status>") -> that status.
ENDED: dict[str, str] = {f"job.{st}": st for st in JOB_STATUSES if is_terminal(st)}
ENDED_WITHOUT_OUTPUT = frozenset(kind for kind, st in ENDED.items() if st != "completed")
# How long an ended follow waits for the API to answer the end it saw on the stream (the catalog records
# an event a moment after the stream carries it), and how often it asks.
SETTLE_SECONDS = 10.0
SETTLE_POLL = 0.2


class EventCommands(ApiClient):
    def events(self, args: argparse.Namespace) -> int:
        params: dict = {k: v for k, v in {"job_id": args.job, "kind": args.kind}.items() if v}
        if not args.follow:
            params["types"] = ",".join([*ENDED, "asset.registered"])
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


class Follow:
    """What ``mpr events`` shows and when it ends: a bar per job on a terminal (a package's children
    under it, the package's own bar from their weighted progress), else one line per event; it ends
    when every ``--job`` has ended (at once if they had before the stream opened) and the API answers
    so, or after ``--exit-after`` jobs have ended."""

    def __init__(self, cli: ApiClient, jobs: list[str], exit_after: int | None, check: bool = True) -> None:
        self.cli = cli
        self.jobs = set(jobs)
        self.exit_after = exit_after
        self.ended: dict[str, str] = {}  # top-level job id -> how it ended
        self.bars: dict[str, TaskID] = {}
        self.child_eta: dict[str, dict[str, float]] = {}  # package -> child -> its ETA
        self.refreshed: dict[str, float] = {}  # package -> when its progress was last read
        self.checked = not check
        self.confirmed: set[str] = set()  # jobs whose end the API answered (see settle)

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
                self.settle()
                break
        else:
            return 0
        return 0 if all(how == "completed" for how in self.ended.values()) else 1

    def done(self) -> bool:
        if self.jobs:
            return self.jobs <= set(self.ended)
        return self.exit_after is not None and len(self.ended) >= self.exit_after

    def settle(self) -> None:
        """Until the API answers each ``--job`` that ended on the stream as ended too: what comes next
        (``curl /api/jobs/ID``, a script reading ``output_url``) reads the end it was told of. Gives up
        quietly after :data:`SETTLE_SECONDS` (the end was seen; only the catalog is late)."""
        waiting = {job_id for job_id in self.jobs if job_id in self.ended and job_id not in self.confirmed}
        deadline = time.monotonic() + SETTLE_SECONDS
        while waiting:
            for job_id in sorted(waiting):
                r = self.cli.http.get(f"/api/jobs/{job_id}")
                if r.status_code == 200 and is_terminal(r.json()["job"]["status"]):
                    waiting.discard(job_id)
            if not waiting or time.monotonic() >= deadline:
                return
            time.sleep(SETTLE_POLL)

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
            if is_terminal(job["status"]):
                event = {**job, "job_id": job["id"]}
                self.show(None, f"job.{job['status']}", event)
                self.ended[job_id] = job["status"]
                self.confirmed.add(job_id)

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
        parent = ev.get("parent_id")
        if parent:
            self.note_child_eta(parent, ev["job_id"], kind, ev.get("eta"))
        if self.progress is None:
            self.print(self.line(event_id, kind, ev))
            return
        self.show_bars(kind, ev)
        if kind in ENDED_WITHOUT_OUTPUT:
            self.print(f"{ev['job_id']} {kind[4:]}: {ev.get('error') or ''}")

    def note_child_eta(self, parent: str, job_id: str, kind: str, eta: float | None) -> None:
        etas = self.child_eta.setdefault(parent, {})
        if kind in ENDED or eta is None:
            etas.pop(job_id, None)
        else:
            etas[job_id] = eta

    @staticmethod
    def line(event_id: str | None, kind: str, ev: dict) -> str:
        """One event as a line (not on a terminal)."""
        done = _done(kind, ev)
        status = ev.get("status") or kind[4:]
        eta, parent = ev.get("eta"), ev.get("parent_id")
        line = f"{event_id or '-'} {kind} {ev['job_id']} {ev.get('kind') or ''} {status} {done:.0f}%"
        if eta is not None and kind not in ENDED:
            line += f" ETA {eta:.0f}s"
        if parent:
            line += f" (package {parent})"
        if kind in ENDED_WITHOUT_OUTPUT and ev.get("error"):
            line += f": {ev['error']}"
        return line

    def show_bars(self, kind: str, ev: dict) -> None:
        job_id, parent, eta = ev["job_id"], ev.get("parent_id"), ev.get("eta")
        done, status = _done(kind, ev), ev.get("status") or kind[4:]
        if parent:
            self.bar(parent, "package", "")
            # a child's id is its package's and its name (<package>-720p, <package>-storyboard)
            name = job_id[len(parent) + 1 :] if job_id.startswith(f"{parent}-") else ev.get("kind")
            self.bar(job_id, f"  └ {name or 'part'}", parent)
            self.update(job_id, done, status, eta)
            self.refresh_package(parent, kind in ENDED)
            return
        self.bar(job_id, ev.get("kind") or "job", "")
        if ev.get("kind") == "package" and kind not in ENDED:
            self.refresh_package(job_id, True)
        else:
            self.update(job_id, done, status, eta)

    def bar(self, job_id: str, label: str, parent: str) -> None:
        assert self.progress is not None
        if job_id not in self.bars:
            self.bars[job_id] = self.progress.add_task(
                f"{label} {job_id}", total=100, status="", eta="", parent=parent
            )

    def update(self, job_id: str, done: float, status: str, eta: float | None) -> None:
        assert self.progress is not None
        text = f"ETA {eta:.0f}s" if eta is not None and not is_terminal(status) else ""
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


def _done(kind: str, ev: dict) -> float:
    return 100.0 if kind == "job.completed" else float(ev.get("progress") or 0)
