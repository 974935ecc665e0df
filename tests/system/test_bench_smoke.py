"""The benchmark harness runs end to end (its smoke sizes, ``--quick``: every section on one stack) and
reports every figure beside its ceiling; speed itself is measured by `make bench`, never asserted in a
timed test."""

from __future__ import annotations

import re

import pytest

from bench.__main__ import main

pytestmark = pytest.mark.system

NUM = r"[\d,]+(?:\.\d+)?"
RATE = rf"{NUM} [a-z]+/s"
LAT = rf"p50 {NUM} ms · p99 {NUM} ms"
RATIO = rf"\*\*{NUM}×?\*\*"
SECS = rf"{NUM} s"

# Every row of the main table: what | MPR | ceiling (same run) | ratio | bar
MAIN_ROWS = {
    "POST phase": rf"\| `POST /api/jobs`, {NUM} requests, {NUM} concurrent: POST phase[^|]* \| {RATE} · {LAT} \| "
    rf"bare Litestar POST: {RATE} · {LAT} \| {RATIO} \| ≥ 2,000 req/s",
    "POST until the catalog has every job": rf"\| `POST /api/jobs`, {NUM} requests, until `GET /api/jobs` counts "
    rf"every job \(caught up {NUM} s after the last POST\) \| {RATE} \| bare Litestar POST: {RATE} \| {RATIO} \|",
    "POST vs bare + JetStream": rf"\| `POST /api/jobs` POST phase, against a bare route that also awaits a "
    rf"JetStream publish \| {RATE} \| bare Litestar POST \+ JetStream publish: {RATE} · {LAT} \| {RATIO} \|",
    "POST vs JetStream alone": rf"\| `POST /api/jobs` POST phase, against JetStream alone \| {RATE} \| raw "
    rf"nats-py publish, acked, 32 concurrent: {RATE} · {LAT} \| {RATIO} \|",
    "CPU per POST": rf"\| CPU per `POST /api/jobs` of the API's process \(and of the catalog's[^|]*: {NUM} µs\) \| "
    rf"{NUM} µs \| the bare app's process per POST: {NUM} µs \| {RATIO} \|",
    "scan": rf"\| scan \+ register {NUM} objects until `GET /api/assets\?prefix=many/` counts all \([^|]*\) \| "
    rf"{RATE} \| moto `list_objects_v2` paging, 1000/page: {RATE} \| {RATIO} \| ≥ 0.8",
    "catalog RSS": rf"\| peak RSS of the catalog during that scan \| {NUM} MiB \| [^|]*: {NUM} MiB \| {RATIO} \|",
    "scanner RSS": rf"\| peak RSS of the scanner during that scan \| {NUM} MiB \| [^|]*: {NUM} MiB \| {RATIO} \|",
    "api RSS": rf"\| peak RSS of the api during that scan \| {NUM} MiB \| [^|]*: {NUM} MiB \| {RATIO} \|",
    "transcode": rf"\| transcode through MPR [^|]* \| {SECS} \| raw FFmpeg[^|]*: {SECS} \| {RATIO} \| ≤ 1.08× \|",
    "thumbnails": rf"\| thumbnails: {NUM} jobs [^|]* \| {RATE} · {LAT} \| raw FFmpeg thumbnail command[^|]*: "
    rf"{RATE} · {LAT} \| {RATIO} \| ≥ 1.5× today",
    "trim bytes copy": rf"\| bytes FFmpeg and ffprobe read from S3 for a {NUM} s trim \(`copy`\)[^|]* \| {NUM} MiB "
    rf"\| the source: {NUM} MiB[^|]* \| {RATIO} \| ≤ 0.05 \|",
    "trim bytes h264": rf"\| bytes FFmpeg and ffprobe read from S3 for a {NUM} s trim \(`h264-720p`\)[^|]* \| "
    rf"{NUM} MiB \| the source: {NUM} MiB[^|]* \| {RATIO} \| ≤ 0.05 \|",
    "trim bytes accurate": rf"\| bytes FFmpeg and ffprobe read from S3 for a {NUM} s trim \(`accurate`\)[^|]* \| "
    rf"{NUM} MiB \| the source: {NUM} MiB[^|]* \| {RATIO} \| ≤ 0.05 \|",
    "accurate trim vs copy": rf"\| frame-accurate {NUM} s trim [^|]* \| {SECS} \| the key-frame-only trim[^|]*: {SECS} \| "
    rf"{RATIO} \| ≤ 3× \|",
    "package": rf"\| package through MPR [^|]* \| {SECS} \| ONE raw FFmpeg command[^|]*: {SECS} \| {RATIO} \| ≤ 1.2× \|",
    "quality cost": rf"\| a package's rung encodes with quality metrics [^|]*mean PSNR {NUM} dB[^|]* \| {SECS} \| the same "
    rf"commands without metrics: {SECS} \| {RATIO} \| ≤ 1.15× \|",
    "trim time copy": rf"\| trim \(`copy`\) wall time[^|]* \| {SECS} \| raw FFmpeg[^|]*: {SECS} \| {RATIO} \|",
    "trim time h264": rf"\| trim \(`h264-720p`\) wall time[^|]* \| {SECS} \| raw FFmpeg[^|]*: {SECS} \| {RATIO} \|",
    "chunked time to playable": r"\| chunked package: time to playable, POST → `job.playable` on its event stream "
    rf"\([^|]*ffprobe then opened the master through the job's `playable_url` in {NUM} s: 1 video \+ 1 audio "
    rf"streams\) \| {SECS}[^|]* \| time to complete, the same package: {SECS}[^|]* \| {RATIO} \| ≤ 10 s; ≤ 0.15 of "
    r"complete \|",
    "chunked vs unchunked": rf"\| no loss on one machine: [^|]*`chunk_seconds: 0`[^|]* \| {SECS}[^|]* \| unchunked: {SECS}[^|]* \| "
    rf"{RATIO} \| ≤ 1.05× \|",
    "chunked scale-out": rf"\| scale-out: the chunked package on 2 transcoders vs 1[^|]* \| {SECS}[^|]* \| 1 transcoder: "
    rf"{SECS}[^|]* \| {RATIO} \| ≤ 0.6× \|",
    "critical path at 16": rf"\| critical path at 16 transcoders: [^|]* \| {SECS} \| 1 transcoder: {SECS} \| {RATIO} \|",
    "critical path at 64": rf"\| critical path at 64 transcoders: [^|]* \| {SECS} \| 1 transcoder: {SECS} \| {RATIO} \|",
    "chunked bytes rest": rf"\| bytes read from S3 by the rest of the chunked package: [^|]*audio {NUM} MiB[^|]* \| "
    rf"{NUM} MiB \| the source: {NUM} MiB \| {RATIO} \|",
}
# The quick chunked package's source is 360p: one rung, cut in two chunks. A chunked rendition has
# exactly the source's frames, one per slot across its join.
MAIN_ROWS["chunked bytes 360p"] = (
    rf"\| bytes read from S3 by the 2 chunks of 360p [^|]* \| {NUM} MiB \| the source: {NUM} MiB "
    rf"\(the unchunked 360p read {NUM} MiB\) \| {RATIO} \| ≤ 1.2× \|"
)
MAIN_ROWS["chunked quality 360p"] = (
    r"\| quality of the chunked 360p \(640x360\) vs the unchunked: frames (\d+) of the source's \1 "
    rf"\(unchunked \1\); 0 missing and 0 repeated over 1 joins; A/V drift at the end [+-]{NUM} ms [^|]* \| "
    rf"{NUM} dB \| the unchunked 360p: {NUM} dB \| \*\*[+-]{NUM} dB\*\* \| frames = the source's"
)
# Per-title ladders against the fixed one (FFmpeg alone): bytes of each way, the top rung's PSNR, the
# analysis' cost
MAIN_ROWS["per-title low"] = (
    rf"\| per-title package of a low-complexity source [^|]* \| {NUM} B \| the fixed ladder: {NUM} B [^|]*\| "
    rf"{NUM}× \| ≤ 0.5×"
)
MAIN_ROWS["per-title high"] = (
    rf"\| per-title top rung \(\w+\) of a high-complexity source [^|]* \| {NUM} dB \| the fixed ladder's: "
    rf"{NUM} dB \| [+-]{NUM} dB \|"
)
MAIN_ROWS["per-title cost"] = rf"\| per-title analysis of the low-complexity source [^|]* \| {SECS} \|"

# Every ceiling, with its rate, p50 and p99
CEILINGS = {
    "bare Litestar": r"\(a\) bare Litestar `POST /api/jobs`",
    "bare Litestar + JetStream": r"\(b\) the same \+ an acked JetStream publish per request",
    "raw JetStream": r"\(c\) raw JetStream publish, acked, 32 concurrent",
    "moto listing": r"\(d\) moto `list_objects_v2`[^|]*",
    "FFmpeg transcode": r"\(e\) raw FFmpeg transcode[^|]*",
    "FFmpeg thumbnail": r"\(e\) raw FFmpeg thumbnail[^|]*",
    "FFmpeg trim copy": r"\(e\) raw FFmpeg trim `copy`[^|]*",
    "FFmpeg trim h264": r"\(e\) raw FFmpeg trim `h264-720p`[^|]*",
}


def test_bench_quick_run_reports_every_figure_beside_its_ceiling(tmp_path):
    out = tmp_path / "b.md"
    assert main(["--quick", "--out", str(out)]) == 0
    text = out.read_text()
    assert "| what | MPR | ceiling (same run) | ratio | bar |" in text
    missing = [name for name, row in MAIN_ROWS.items() if not re.search(row, text)]
    assert not missing, f"rows missing or malformed: {missing}\n{text}"
    for name, what in CEILINGS.items():
        assert re.search(rf"\| {what} \| {RATE} \| {NUM} ms \| {NUM} ms \|", text), f"ceiling {name}\n{text}"
    assert re.search(rf"\| load generator's own CPU against the bare app \| ≤ {NUM} req/s per core", text)
    # the report states numbers and bars, never a verdict of its own
    assert not re.search(r"✅|❌|\bPASS\b|\bFAIL\b", text)
