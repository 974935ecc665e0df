"""Every command of README.md works as written: its ```sh blocks run in order, in one bash session with
``set -euo pipefail``, on a fresh system (a stack of their own, an empty working directory, a HOME with
no ~/.aws, no AWS_*, S3_* or MPR_* variables), exactly as a newcomer would paste them after `make dev`.

The text run is the README's own; the only substitutions and rules are these:

- ``localhost:8000`` and ``127.0.0.1:8000`` (the API) and ``127.0.0.1:9000`` (S3) become the host:port of
  this test's stack, which runs on random ports.
- ``make dev`` is the stack this test started and ``make test`` is the suite that runs this test: those
  lines are not run again.
- ``uv run X`` runs the workspace's ``X`` (what ``uv run`` does in this checkout; the session's working
  directory is not the checkout, so that the files the README makes land in a directory of their own).
  The first ``uv run`` line runs through the real ``uv run``, pointed at this checkout (``UV_PROJECT``);
  the later ones skip uv's own start, and ``mpr`` is forked by a launcher that imported the CLI once
  (``mpr_relay.py``: ``python -m mpr_cli``, what the ``mpr`` script runs, with the line's argv,
  environment, working directory and stdio), since two dozen fresh imports of the CLI cost more CPU
  than anything else the test's own side does.
- ``curl`` fails on an HTTP error (``--fail-with-body``: the answer is still shown); ``curl -N`` is a live
  stream that a reader stops with Ctrl-C: the test stops it after a few seconds and checks it answered
  200.
- ``ffplay`` opens a window: the test runs ``ffprobe -v warning`` with the same arguments in its place, so
  what would play is read, and FFmpeg must not complain about reusing an HTTP connection (a signed
  link's segments are absolute presigned URLs, one hop each).

New blocks are picked up as they are added; a block that should not run is not an ``sh`` block."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import sys
import warnings
from pathlib import Path

import pytest

from mpr_devstack.stack import Stack
from tests.system.mpr_relay import CLIENT, MprRelay

pytestmark = pytest.mark.system

README = Path(__file__).resolve().parents[2] / "README.md"
BIN = Path(sys.executable).parent
STREAM_SECONDS = 3
TIMEOUT = 900  # the whole README, on a loaded machine: commands that wait for a job end with the job

PRELUDE = r"""
set -euo pipefail
uv() {
  if [ "${1:-}" != run ]; then command uv "$@"; return; fi
  shift
  if [ -n "$README_REAL_UV" ]; then
    README_REAL_UV=
    echo "(the real uv run)" >&2
    UV_PROJECT="$README_CHECKOUT" command uv run "$@"; return
  fi
  local cmd="$1"; shift
  if [ "$cmd" = mpr ]; then "$README_PYTHON" -I -S "$README_MPR_CLIENT" "$README_MPR_RELAY" "$@"; return; fi
  "$README_BIN/$cmd" "$@"
}
curl() {
  local arg stream=0
  for arg in "$@"; do case "$arg" in -N|--no-buffer|-[!-]*N*) stream=1 ;; esac; done
  if [ "$stream" = 0 ]; then command curl --fail-with-body "$@"; return; fi
  local head; head=$(mktemp)
  timeout -k 2 "$README_STREAM_SECONDS" curl --silent --dump-header "$head" "$@" || true
  echo
  head -1 "$head" | grep -q ' 200' || { echo "stream answered: $(cat "$head")" >&2; return 1; }
}
ffplay() {
  local err; err=$(mktemp)
  ffprobe -v warning "$@" >/dev/null 2>"$err" || { cat "$err" >&2; return 1; }
  if grep -q 'Cannot reuse HTTP connection' "$err"; then cat "$err" >&2; return 1; fi
}
"""


def sh_blocks(text: str) -> list[tuple[int, str]]:
    """(line number, text) of each ```sh block, in order."""
    blocks = []
    for m in re.finditer(r"^```sh\n(.*?)^```", text, re.M | re.S):
        blocks.append((text.count("\n", 0, m.start()) + 2, m.group(1)))
    return blocks


def commands(block: str) -> list[str]:
    """The block's commands: its lines, a line ending in a backslash joined with the next."""
    out: list[str] = []
    pending = ""
    for line in block.splitlines():
        pending += line + "\n"
        if not line.endswith("\\"):
            out.append(pending.rstrip("\n"))
            pending = ""
    return out + ([pending.rstrip("\n")] if pending else [])


def runnable(block: str, api: str, s3: str) -> str:
    """The block as the test runs it: each command echoed (as the README has it) before it runs."""
    out = []
    for command in commands(block):
        if not command.strip() or command.lstrip().startswith("#"):
            continue
        shown = "+ " + command.replace("'", "'\\''")
        out.append(f"printf '[%3ds] %s\\n' \"$SECONDS\" '{shown}' >&2")
        if re.match(r"\s*make (dev|test)\b", command):
            continue  # this test's stack, and the suite that runs this test
        command = re.sub(r"\b(localhost|127\.0\.0\.1):8000\b", api, command)
        out.append(re.sub(r"\b127\.0\.0\.1:9000\b", s3, command))
    return "\n".join(out)


def test_sh_blocks_are_found_in_order():
    blocks = sh_blocks(README.read_text())
    assert len(blocks) >= 8
    first = blocks[0][1]
    assert "make dev" in first
    assert any("export T=" in b for _, b in blocks[:3])
    script = runnable("curl localhost:8000/a http://127.0.0.1:9000/b 127.0.0.1:9999/c", "h:1", "h:2")
    assert script.splitlines()[-1] == "curl h:1/a http://h:2/b 127.0.0.1:9999/c"
    assert commands("a \\\n  b\nc") == ["a \\\n  b", "c"]
    # what is echoed is the README's text, quotes and all
    echoed = subprocess.run(
        ["bash", "-c", runnable("x='1' # y", "h:1", "h:2")], capture_output=True, text=True
    )
    # the elapsed seconds are whatever the clock says on a busy machine; the text after them is exact
    assert re.fullmatch(r"\[ *\d+s\] \+ x='1' # y\n", echoed.stderr), echoed.stderr


@pytest.fixture
def relay(tmp_path):
    """The session's ``mpr``; its launcher imports the CLI while the stack starts."""
    home = tmp_path / "home"
    home.mkdir()
    relay = MprRelay(home)
    yield relay
    relay.stop()


@pytest.mark.timeout(TIMEOUT + 120)
def test_the_readme_runs_as_written(tmp_path, relay):
    work, home = tmp_path / "work", tmp_path / "home"
    work.mkdir()
    stack = Stack(tmp_path / "stack", transcoders=2).start()
    try:
        assert stack.moto is not None
        api, s3 = stack.api_url.removeprefix("http://"), stack.moto.url.removeprefix("http://")
        parts = [PRELUDE]
        for line_no, block in sh_blocks(README.read_text()):
            parts.append(f'echo "### README.md line {line_no}" >&2')
            parts.append(runnable(block, api, s3))
        parts.append('echo "### README.md: every block ran" >&2')
        env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "S3_", "MPR_"))}
        env.update(
            HOME=str(home),
            README_BIN=str(BIN),
            README_CHECKOUT=str(README.parent),
            README_REAL_UV="1",
            README_PYTHON=sys.executable,
            README_MPR_CLIENT=str(CLIENT),
            README_MPR_RELAY=str(relay.path),
            README_STREAM_SECONDS=str(STREAM_SECONDS),
            COLUMNS="120",
        )
        # Output to a file, not a pipe: a process the README starts in the background (the stand-in
        # webhook receiver) must not keep the test waiting when a command fails before it is stopped.
        log = tmp_path / "readme.log"
        with log.open("w") as out:
            bash = subprocess.Popen(
                ["bash", "-c", "\n".join(parts)],
                cwd=work,
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
            try:
                rc = bash.wait(TIMEOUT)
            finally:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(bash.pid, signal.SIGKILL)
        text = log.read_text(errors="replace")
        tail = "\n".join(text.splitlines()[-80:])
        assert rc == 0, f"a README command failed (exit {rc}):\n{tail}"
        assert "### README.md: every block ran" in text, tail
        assert "(the real uv run)" in text, "no line ran through the real uv run"
        assert (work / "out.mp4").stat().st_size > 0
        if relay.refusals:
            warnings.warn(f"mpr ran as the installed script: {relay.refusals}", stacklevel=1)
    finally:
        stack.stop()
