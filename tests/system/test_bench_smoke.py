"""The benchmark harness runs end to end (quick sizes) and reports every figure; speed itself is
measured by `make bench`, never asserted in a timed test."""

from __future__ import annotations

import re

import pytest

from bench.__main__ import main

pytestmark = pytest.mark.system


def test_bench_quick_run_reports_all_rows(tmp_path):
    out = tmp_path / "b.md"
    assert main(["--quick", "--out", str(out)]) == 0
    text = out.read_text()
    assert re.search(r"\*\*\d+\.\d+×\*\* raw", text)
    assert len(re.findall(r"of the source \|", text)) == 2
    assert re.search(r"\*\*\d+ objects/s\*\*", text) and re.search(r"\*\*\d+ req/s\*\*", text)
