"""The API's layout (docs/architecture.md): one folder per domain, each exporting its Feature from
``feature.py``, and no import cycle among its packages (a domain imports only those below it)."""

from __future__ import annotations

import ast
import importlib
from pathlib import Path

import mpr_api
from mpr_api.feature import Feature
from mpr_api.features import FEATURES

ROOT = Path(mpr_api.__file__).parent
DOMAINS = ["jobs", "assets", "presets", "queues", "retries", "automation", "webhooks", "events", "console"]
CROSS_CUTTING = ["http", "graphql"]


def _node(module: str) -> str:
    """A module's node in the graph: its top-level package under mpr_api (``jobs``), or the module
    itself for the files at the top (``state``, ``feature``, ``app``, …)."""
    return module.split(".")[1] if module.count(".") >= 1 else module


def _module_of(path: Path) -> str:
    parts = list(path.relative_to(ROOT.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path) -> set[str]:
    """The mpr_api modules a file imports, relative imports resolved (those under TYPE_CHECKING too)."""
    module = _module_of(path)
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if target == "mpr_api" or target.startswith("mpr_api."):
                names = [f"{target}.{a.name}" for a in node.names] if not node.module else [target]
                found.update(names)
        elif isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.startswith("mpr_api."))
    return found


def _graph() -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {}
    for path in ROOT.rglob("*.py"):
        here = _node(_module_of(path))
        for target in _imports(path):
            there = _node(target)
            if there != here and there != "mpr_api":
                graph.setdefault(here, set()).add(there)
        graph.setdefault(here, set())
    return graph


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle of the graph, or None."""
    done: set[str] = set()

    def visit(node: str, path: list[str]) -> list[str] | None:
        if node in path:
            return [*path[path.index(node) :], node]
        if node in done:
            return None
        for after in sorted(graph.get(node, ())):
            cycle = visit(after, [*path, node])
            if cycle:
                return cycle
        done.add(node)
        return None

    for start in sorted(graph):
        cycle = visit(start, [])
        if cycle:
            return cycle
    return None


def test_no_import_cycle_among_the_api_packages():
    graph = _graph()
    assert set(DOMAINS + CROSS_CUTTING) <= set(graph)  # the checker sees every package
    assert graph["jobs"] >= {"http", "assets"}  # … and the imports between them
    assert _cycle(graph) is None, " -> ".join(_cycle(graph) or [])


def test_the_cycle_check_finds_a_cycle():
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert _cycle({"a": {"b"}, "b": set()}) is None


def test_cross_cutting_packages_import_no_domain():
    graph = _graph()
    for package in CROSS_CUTTING:
        assert not graph[package] & set(DOMAINS), package


def test_every_domain_folder_exports_its_feature():
    for domain in DOMAINS:
        feature = importlib.import_module(f"mpr_api.{domain}.feature").FEATURE
        assert isinstance(feature, Feature), domain
        assert feature.name == domain
        assert feature in FEATURES, f"{domain}'s feature is not mounted"
    folders = {p.parent.name for p in ROOT.glob("*/__init__.py")}
    assert folders == set(DOMAINS + CROSS_CUTTING), "a folder that is neither a domain nor cross-cutting"


def test_each_domain_keeps_its_http_graphql_and_service_code_in_its_folder():
    """A feature's routes and GraphQL types are defined in its own folder."""
    for feature in FEATURES:
        for part in [*feature.routes, feature.graphql_query, feature.graphql_mutation]:
            if part is None:
                continue
            if isinstance(part, type):  # a controller or a strawberry type
                module = part.__module__
            elif hasattr(part, "fn"):  # a route handler: where its function is
                module = part.fn.__module__
            else:  # a router Litestar made (the console's static files)
                continue
            assert module.startswith(f"mpr_api.{'http' if feature.name == 'health' else feature.name}."), (
                feature.name,
                module,
            )
