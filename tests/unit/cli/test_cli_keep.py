"""The CLI submits keep_if and its floors, and says when a completed job's output was not kept."""

from __future__ import annotations

import io
import json

import httpx
from rich.console import Console

from mpr_cli.arguments import parser
from mpr_cli.cli import Cli


def test_submit_sends_the_options_and_watch_says_not_kept():
    sent: list[dict] = []
    keep = {
        "keep_if": "smaller",
        "kept": False,
        "reason": "larger",
        "detail": "output 412 kB/s > source 300 kB/s",
    }
    base = {"id": "j1", "kind": "transcode", "source_key": "a.mp4", "output_key": "a/j1/h264-720p.mp4"}

    def api(request: httpx.Request) -> httpx.Response:
        if request.method == "POST":
            sent.append(json.loads(request.content))
            return httpx.Response(202, json={"job": {**base, "status": "queued", "progress": 0}})
        done = {**base, "status": "completed", "progress": 100, "outcome": "not_kept", "keep": keep}
        return httpx.Response(200, json={"job": done, "output_url": None})

    out = io.StringIO()
    c = Cli("http://mpr.test", "t", Console(file=out, width=200), transport=httpx.MockTransport(api))
    args = ["submit", "transcode", "a.mp4", "--keep-if", "smaller", "--min-ssim", "0.9", "--watch"]
    assert c.submit(parser().parse_args(args)) == 0  # completed: not a failure
    assert sent[0]["keep_if"] == "smaller" and sent[0]["min_ssim"] == 0.9 and "min_psnr" not in sent[0]
    assert (
        "completed, not kept (nothing written to a/j1/h264-720p.mp4): output 412 kB/s > source 300 kB/s"
        in (" ".join(out.getvalue().split()))
    )
