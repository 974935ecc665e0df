"""The mpr CLI against a scripted API (httpx's MockTransport): ``events --follow --job`` ends with its
jobs, at once when they had ended before the stream opened; a line per event (with its id) when the
output is not a terminal; a package's bar from its children's weighted progress, with their ETA;
``--exit-after``; whole job ids at 80 columns; one line for pause and resume; and a templates file
that is missing or not JSON is a one-line error with exit status 2."""

from __future__ import annotations

import argparse
import functools
import io
import itertools
import json
import tempfile
from pathlib import Path

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from rich.console import Console
from rich.progress import Progress

from mpr_cli.__main__ import main
from mpr_cli.arguments import parser
from mpr_cli.cli import Cli
from mpr_cli.control_commands import read_body
from mpr_cli.follow import Follow

LONG_ID = "r-" + "0123456789abcdef" * 2  # as long as a rule's job ids


def sse(*events: tuple[str, str, dict]) -> bytes:
    return b"".join(
        f"id: {i}\nevent: {kind}\ndata: {json.dumps(data)}\n\n".encode() for i, kind, data in events
    )


class Api:
    """Answers GET /api/jobs/{id} from ``jobs`` and GET /api/events with ``stream`` (once)."""

    def __init__(
        self,
        jobs: dict[str, dict],
        stream: bytes,
        extra: dict[str, dict] | None = None,
        catalog_lag: int = 1,
    ) -> None:
        self.jobs, self.stream, self.extra = jobs, stream, extra or {}
        self.requests: list[str] = []
        self.streams = 0
        # The catalog records what the stream carries a moment later: a job that ended on the stream is
        # read as ended after ``catalog_lag`` reads of it (the first: the check as the stream opens).
        self.recorded: dict[str, tuple[int, dict]] = {}
        for block in stream.decode().split("\n\n"):
            fields = dict(line.split(": ", 1) for line in block.splitlines() if ": " in line)
            kind, data = fields.get("event", ""), json.loads(fields.get("data", "{}"))
            if kind.removeprefix("job.") in ("completed", "failed", "cancelled") and "job_id" in data:
                ended = {**job(data["job_id"], kind.removeprefix("job."), 100), **data, "id": data["job_id"]}
                self.recorded[data["job_id"]] = (catalog_lag, ended)

    def __call__(self, request: httpx.Request) -> httpx.Response:
        path = request.url.path
        self.requests.append(f"{request.method} {path}")
        if path == "/api/events":
            self.streams += 1
            assert self.streams == 1, "the CLI reconnected: it should have ended"
            return httpx.Response(200, content=self.stream, headers={"content-type": "text/event-stream"})
        if path in self.extra:
            return httpx.Response(200, json=self.extra[path])
        job_id = path.removeprefix("/api/jobs/")
        if self.streams and job_id in self.recorded:
            lag, ended = self.recorded[job_id]
            if lag <= 0:
                self.jobs[job_id] = ended
            self.recorded[job_id] = (lag - 1, ended)
        if job_id in self.jobs:
            return httpx.Response(200, json={"job": self.jobs[job_id]})
        return httpx.Response(404, json={"detail": f"job {job_id} not found"})


def cli(api: Api, terminal: bool = False, width: int = 80) -> tuple[Cli, io.StringIO]:
    out = io.StringIO()
    console = Console(file=out, force_terminal=terminal, width=width, color_system=None)
    return Cli("http://mpr.test", "t", console, transport=httpx.MockTransport(api)), out


def events_args(*argv: str) -> argparse.Namespace:
    return parser().parse_args(["events", *argv])


def job(job_id: str, status: str, progress: float = 0.0, kind: str = "thumbnail") -> dict:
    return {"id": job_id, "kind": kind, "status": status, "progress": progress, "error": None}


def test_follow_a_job_that_had_already_ended_exits_at_once_and_says_how():
    api = Api({LONG_ID: job(LONG_ID, "completed", 100)}, b"")
    c, out = cli(api)
    assert c.events(events_args("--follow", "--job", LONG_ID)) == 0
    assert f"job.completed {LONG_ID} thumbnail completed 100%" in out.getvalue()
    # the stream was opened first, so nothing between the check and the stream is missed
    assert api.requests == ["GET /api/events", f"GET /api/jobs/{LONG_ID}"]


def test_follow_prints_a_line_per_event_when_not_a_terminal_and_ends_with_the_job():
    stream = sse(
        ("1.1.0", "job.queued", {"job_id": "j1", "kind": "transcode", "status": "queued", "progress": 0}),
        (
            "1.2.0",
            "job.progress",
            {"job_id": "j1", "kind": "transcode", "status": "running", "progress": 42.5, "eta": 12.4},
        ),
        ("1.3.0", "job.completed", {"job_id": "j1", "kind": "transcode", "status": "completed"}),
        ("1.4.0", "job.queued", {"job_id": "later", "kind": "transcode", "status": "queued"}),
    )
    api = Api({}, stream)  # j1 not known yet when the stream opened: its events come
    c, out = cli(api)
    assert c.events(events_args("--follow", "--job", "j1")) == 0
    lines = out.getvalue().splitlines()
    assert lines == [
        "1.1.0 job.queued j1 transcode queued 0%",
        "1.2.0 job.progress j1 transcode running 42% ETA 12s",
        "1.3.0 job.completed j1 transcode completed 100%",
    ]


def test_an_ended_follow_returns_once_the_api_answers_the_end_it_saw(monkeypatch):
    """The catalog records an end a moment after the stream carries it: the next command (a `curl` of
    the job's output_url) must read it, so the follow waits for the API to answer it."""
    monkeypatch.setattr("mpr_cli.follow.SETTLE_POLL", 0.0)
    stream = sse(("1.3.0", "job.completed", {"job_id": "j1", "kind": "package", "status": "completed"}))
    api = Api({"j1": job("j1", "running", kind="package")}, stream, catalog_lag=2)
    c, _ = cli(api)
    assert c.events(events_args("--follow", "--job", "j1")) == 0
    assert api.requests == ["GET /api/events", *["GET /api/jobs/j1"] * 3]  # the check, then until ended
    assert api.jobs["j1"]["status"] == "completed"


def test_a_follow_whose_end_the_api_never_answers_gives_up_after_a_while(monkeypatch):
    monkeypatch.setattr("mpr_cli.follow.SETTLE_POLL", 0.0)
    monkeypatch.setattr("mpr_cli.follow.SETTLE_SECONDS", 0.2)
    stream = sse(("1.3.0", "job.completed", {"job_id": "j1", "kind": "package", "status": "completed"}))
    api = Api({"j1": job("j1", "running", kind="package")}, stream, catalog_lag=10**9)
    c, _ = cli(api)
    assert c.events(events_args("--follow", "--job", "j1")) == 0  # the end was seen: still a success


def test_a_failed_job_ends_the_follow_with_status_1():
    stream = sse(("1.1.0", "job.failed", {"job_id": "j1", "status": "failed", "error": "bad input"}))
    c, out = cli(Api({"j1": job("j1", "running")}, stream))
    assert c.events(events_args("--follow", "--job", "j1")) == 1
    assert "bad input" in out.getvalue()


def test_exit_after_counts_jobs_not_a_packages_children():
    stream = sse(
        (
            "1.1.0",
            "job.completed",
            {"job_id": "c1", "kind": "rendition", "status": "completed", "parent_id": "p"},
        ),
        ("1.2.0", "job.completed", {"job_id": "p", "kind": "package", "status": "completed"}),
        ("1.3.0", "job.queued", {"job_id": "next", "kind": "package", "status": "queued"}),
    )
    c, out = cli(Api({}, stream))
    assert c.events(events_args("--follow", "--kind", "package", "--exit-after", "1")) == 0
    assert "next" not in out.getvalue()


def test_a_packages_bar_follows_its_childrens_weighted_progress_with_their_eta():
    stream = sse(
        (
            "1.1.0",
            "job.progress",
            {
                "job_id": "c1",
                "kind": "rendition",
                "status": "running",
                "progress": 50,
                "eta": 8,
                "parent_id": "pkg",
            },
        ),
        (
            "1.2.0",
            "job.progress",
            {
                "job_id": "pkg-storyboard",
                "kind": "storyboard",
                "status": "running",
                "progress": 10,
                "eta": 30,
                "parent_id": "pkg",
            },
        ),
    )
    api = Api({"pkg": job("pkg", "running", 37.5, "package")}, stream)
    c, _ = cli(api, terminal=True)
    follow = Follow(c, [], None)
    with Progress(console=c.out) as progress:
        follow.run(itertools.islice(c.sse({}), 3), progress)  # opened, then the two events
        tasks = {t.description.split()[-1]: t for t in progress.tasks}
    assert tasks["pkg"].completed == 37.5 and tasks["pkg"].fields["eta"] == "ETA 30s"
    assert tasks["c1"].completed == 50 and tasks["c1"].fields["parent"] == "pkg"
    assert tasks["pkg-storyboard"].description.startswith("  └ storyboard ")  # named by its part


def test_list_jobs_prints_ids_whole_at_80_columns():
    page = {
        "total": 1,
        "items": [
            {
                "job": {
                    **job(LONG_ID, "completed", 100, "package"),
                    "source_key": "incoming/a-rather-long-name/video.mp4",
                    "output_key": "incoming/a-rather-long-name/video/" + LONG_ID + "/master.m3u8",
                }
            }
        ],
    }
    c, out = cli(Api({}, b"", extra={"/api/jobs": page}), width=80)
    assert c.list("jobs", 50, None, None) == 0
    assert LONG_ID in out.getvalue()


def test_pause_and_resume_say_what_they_did_in_one_line():
    states = {
        "queues": [
            {
                "priority": p,
                "paused": p == "bulk",
                "pending": 0,
                "in_flight": 0,
                "oldest_waiting_seconds": None,
                "consumer": "x",
            }
            for p in ("urgent", "normal", "bulk")
        ]
    }
    c, out = cli(Api({}, b"", extra={"/api/queues/bulk/pause": states, "/api/queues/resume": states}))
    assert c.queues("pause", "bulk") == 0 and c.queues("resume", None) == 0
    assert out.getvalue().splitlines() == ["bulk paused", "every class resumed"]


def test_a_missing_or_invalid_templates_file_is_a_one_line_error(tmp_path, capsys):
    with pytest.raises(SystemExit) as exc:
        main(["templates", "put", "web", "--file", str(tmp_path / "web.json")])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("mpr: cannot read") and "Traceback" not in err and len(err.splitlines()) == 1
    bad = tmp_path / "bad.json"
    bad.write_text("{kind: package}")
    with pytest.raises(SystemExit) as exc:
        main(["templates", "put", "web", "--file", str(bad)])
    assert exc.value.code == 2 and "is not JSON" in capsys.readouterr().err


def test_the_templates_help_says_what_the_file_holds(capsys):
    with pytest.raises(SystemExit):
        main(["templates", "--help"])
    help_text = " ".join(capsys.readouterr().out.split())
    assert "the template as JSON" in help_text and '"kind": "package"' in help_text


def refuse(constant: str) -> object:
    raise ValueError(constant)


@settings(max_examples=100, deadline=None)  # file I/O on a loaded machine
@given(st.text(max_size=200))
def test_any_file_text_is_its_json_or_a_usage_error(text):
    with tempfile.TemporaryDirectory() as d:
        f = Path(d) / "t.json"
        f.write_text(text, encoding="utf-8", errors="surrogatepass")  # lone surrogates: not UTF-8
        try:  # what a strict reader makes of the file: UTF-8, and JSON without NaN or Infinity
            expected = json.loads(f.read_bytes().decode(), parse_constant=refuse)
        except ValueError:
            with pytest.raises(SystemExit) as exc:
                read_body(str(f))
            assert exc.value.code == 2
        else:
            assert read_body(str(f)) == expected


def test_a_reset_says_so_and_what_is_kept_follows():
    stream = sse(
        ("1.9.0", "reset", {"reason": "the cursor is older than what the streams keep", "at": 1.0}),
        ("1.10.0", "job.completed", {"job_id": "j1", "kind": "audio", "status": "completed"}),
    )
    c, out = cli(Api({}, stream))
    assert c.events(events_args("--follow", "--job", "j1", "--after", "1.1.0")) == 0
    assert out.getvalue().splitlines() == [
        "1.9.0 reset: the cursor is older than what the streams keep",
        "1.10.0 job.completed j1 audio completed 100%",
    ]


class RetriedApi:
    """POST /retry answers the new run (queued, retries 1); GET reads the last run's failure twice (the
    catalog has not recorded the retry yet), then the new run, then its completion."""

    def __init__(self) -> None:
        failed = {**job("j1", "failed"), "retries": 0, "error": "source is not readable media"}
        queued = {**job("j1", "queued"), "retries": 1}
        done = {**job("j1", "completed", 100), "retries": 1, "output_bucket": "b", "output_key": "k"}
        self.reads = iter([failed, failed, queued, done])
        self.gets = 0

    def __call__(self, request: httpx.Request) -> httpx.Response:
        if request.method == "POST":
            return httpx.Response(200, json={"job": {**job("j1", "queued"), "retries": 1}})
        self.gets += 1
        return httpx.Response(200, json={"job": {"output_size": 1, **next(self.reads)}})


def test_retry_watch_follows_the_new_run_not_the_failure_it_replaces():
    api = RetriedApi()
    out = io.StringIO()
    c = Cli("http://mpr.test", "t", Console(file=out, width=120), transport=httpx.MockTransport(api))
    c.watch = functools.partial(c.watch, interval=0)  # type: ignore[method-assign]
    assert c.retry(parser().parse_args(["retry", "j1", "--watch"])) == 0, out.getvalue()
    assert api.gets == 4 and "completed: s3://b/k" in out.getvalue()
