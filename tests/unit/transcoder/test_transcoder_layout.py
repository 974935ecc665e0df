"""The transcoder's layout holds: FFmpeg and ffprobe are started from one module of ``ffmpeg/``, the input
whitelists are written there only, and every job kind has its plan in the ``kinds`` registry."""

from __future__ import annotations

import ast
from pathlib import Path

import mpr_transcoder
from mpr_common.events import JOB_KINDS
from mpr_common.mediainfo import INPUT_FORMATS
from mpr_transcoder.kinds import KINDS

ROOT = Path(mpr_transcoder.__file__).parent
FFMPEG = ROOT / "ffmpeg"
# Ways to start a process, by module; only ffmpeg/process.py may use any of them.
STARTS = {
    "asyncio": {"create_subprocess_exec", "create_subprocess_shell"},
    "subprocess": {"Popen", "run", "call", "check_call", "check_output", "getoutput", "getstatusoutput"},
    "os": {"system", "popen", "fork", "forkpty", "posix_spawn", "posix_spawnp"},
}
PROCESS_MODULES = {"subprocess", "asyncio.subprocess", "multiprocessing", "pty"}
WHITELIST_OPTIONS = {"-protocol_whitelist", "-format_whitelist"}
# Defined in mpr_common.mediainfo, shared with the catalog's ffprobe: the transcoder takes them via ffmpeg/.
WHITELIST_NAMES = {"INPUT_FORMATS", "NETWORK_PROTOCOLS", "child_setup", "ffprobe_args", "probe"}


def sources() -> list[Path]:
    return sorted(p for p in ROOT.rglob("*.py") if "__pycache__" not in p.parts)


def _import(node: ast.Import) -> list[str]:
    return [f"imports {a.name}" for a in node.names if a.name in PROCESS_MODULES]


def _import_from(node: ast.ImportFrom) -> list[str]:
    module = node.module or ""
    found = []
    if module in PROCESS_MODULES:
        found.append(f"imports from {module}")
    starts = STARTS.get(module, set()) | {"subprocess"}
    if module in STARTS and any(a.name in starts for a in node.names):
        found.append(f"imports a process start from {module}")
    if module == "mpr_common.mediainfo":
        found += [f"imports {a.name}" for a in node.names if a.name in WHITELIST_NAMES]
    return found


def _attribute(node: ast.Attribute) -> list[str]:
    base = ast.unparse(node.value)
    if node.attr in STARTS.get(base, ()) or (base == "os" and node.attr.startswith(("exec", "spawn"))):
        return [f"calls {base}.{node.attr}"]
    return []


def _constant(node: ast.Constant) -> list[str]:
    if isinstance(node.value, str) and (node.value in WHITELIST_OPTIONS or INPUT_FORMATS in node.value):
        return [f"writes {node.value[:40]!r}"]
    return []


# What each kind of node may do that only ffmpeg/ may.
CHECKS = {
    ast.Import: _import,
    ast.ImportFrom: _import_from,
    ast.Attribute: _attribute,
    ast.Constant: _constant,
}


def findings(path: Path) -> list[str]:
    """What ``path`` does that only ffmpeg/ may: start a process, write a whitelist option or value,
    take the whitelists (or mediainfo's process helpers) from mpr_common directly."""
    tree = ast.parse(path.read_text(), str(path))
    found = []
    for node in ast.walk(tree):
        check = CHECKS.get(type(node))
        if check is not None:
            where = f"{path.relative_to(ROOT)}:{getattr(node, 'lineno', 0)}"
            found += [f"{where} {what}" for what in check(node)]  # type: ignore[operator]
    return found


def test_ffmpeg_and_ffprobe_are_started_and_whitelisted_only_in_the_ffmpeg_package():
    outside = [p for p in sources() if FFMPEG not in p.parents]
    assert len(outside) > 20  # the scan sees the whole service
    assert [f for p in outside for f in findings(p)] == []


def test_one_module_of_the_ffmpeg_package_starts_processes():
    starting = {p.name for p in FFMPEG.glob("*.py") if any(" calls " in f for f in findings(p))}
    assert starting == {"process.py"}
    # ... and the scan would see a start: it finds the one in process.py
    assert any("asyncio.create_subprocess_exec" in f for f in findings(FFMPEG / "process.py"))


def test_the_whitelist_options_are_written_once():
    writing = {p.name for p in FFMPEG.glob("*.py") if any(" writes " in f for f in findings(p))}
    assert writing == {"argv.py"}


def test_every_job_kind_has_a_registry_entry_with_a_plan():
    assert set(KINDS) == set(JOB_KINDS)
    for kind in JOB_KINDS:
        assert callable(getattr(KINDS[kind], "plan", None)), kind
