"""Progress a person can read while ``make test`` runs: one line per test file as its last test ends
(position, outcome counts, the file's wall time), and the heaviest files scheduled first so that the
end of a run is not one long file running alone.

With pytest-xdist the controller learns each file's size from the workers' collections; without it,
from the session's own collection."""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field

import pytest

# Files that start stacks of their own (fault injection, whole-stack restarts), run the benchmark harness
# or a fuzzer, or drive a browser, heaviest first: run first, so that the cheap files fill in around them
# instead of trailing behind them.
HEAVY_FIRST = (
    "tests/system/test_faults",
    "tests/system/test_dev_command",
    "tests/system/test_bench_smoke",
    "tests/system/test_api_fuzz",
    "tests/system/test_readme",
    "tests/system/test_cluster",
    "tests/system/test_leases",
    "tests/system/test_compose_topology",
    "tests/browser/",
    "tests/system/",
)


def file_weight(path: str) -> int:
    """Lower runs earlier; files the list does not name keep their order after those it does."""
    for rank, prefix in enumerate(HEAVY_FIRST):
        if path.startswith(prefix):
            return rank
    return len(HEAVY_FIRST)


def order_items(items: list[pytest.Item]) -> None:
    """Heavy files first, each file's tests kept together and in their own order (a stable sort)."""
    items.sort(key=lambda item: file_weight(item.nodeid.split("::", 1)[0]))


@dataclass
class FileProgress:
    total: int
    started: float = float("inf")  # wall clock, as reports carry it
    seen: set[str] = field(default_factory=set)
    outcomes: Counter[str] = field(default_factory=Counter)


class Progress:
    def __init__(self, config: pytest.Config) -> None:
        self.config = config
        self.files: dict[str, FileProgress] = {}
        self.sizes: Counter[str] = Counter()
        self.done = 0
        self.total = 0
        self.t0 = time.time()

    @pytest.hookimpl(optionalhook=True)
    def pytest_xdist_node_collection_finished(self, node: object, ids: list[str]) -> None:
        self.sized(ids)

    def pytest_collection_finish(self, session: pytest.Session) -> None:
        self.sized([item.nodeid for item in session.items])

    def sized(self, nodeids: list[str]) -> None:
        if self.total:  # every xdist worker reports the same collection
            return
        self.sizes = Counter(nid.split("::", 1)[0] for nid in nodeids)
        self.total = len(nodeids)

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        self.report(report)

    def report(self, rep: pytest.TestReport) -> None:
        path = rep.nodeid.split("::", 1)[0]
        if path not in self.sizes:
            return
        fp = self.files.setdefault(path, FileProgress(self.sizes[path]))
        fp.started = min(fp.started, getattr(rep, "start", time.time()))
        if rep.failed or (rep.when == "call" and not rep.passed) or (rep.when == "setup" and rep.skipped):
            fp.outcomes["failed" if rep.failed else "skipped"] += 1
        elif rep.when == "call" and rep.passed:
            fp.outcomes["passed"] += 1
        if rep.when != "teardown" or rep.nodeid in fp.seen:
            return
        fp.seen.add(rep.nodeid)
        self.done += 1
        if len(fp.seen) == fp.total:
            counts = ", ".join(f"{n} {what}" for what, n in sorted(fp.outcomes.items()))
            tr = self.config.pluginmanager.get_plugin("terminalreporter")
            if tr is not None:
                if getattr(tr._tw, "width_of_current_line", 0):  # after a row of dots
                    tr._tw.line()
                tr.write_line(
                    f"[{self.done:4d}/{self.total}] {time.time() - self.t0:4.0f} s  {path}: {counts} "
                    f"(the file took {time.time() - fp.started:.0f} s)"
                )
