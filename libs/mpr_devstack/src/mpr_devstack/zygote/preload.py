"""What the launcher imports before it forks anything, and what those imports depended on.

Each entry is a module a request may run as ``__main__`` and the modules its process would import
anyway (moto's server loads its S3 backend on the first S3 request; the services load uvloop when
their loop starts). In the order a ``Stack`` starts them: a request waits only for its own entry.

An import that reads the environment reads the launcher's: :class:`EnvReads` records which variables
were read and what they held, so that a request whose environment differs in one of them is not
forked from here (it would run with the launcher's value)."""

from __future__ import annotations

import importlib
import importlib.util
import os
import random
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager

ENTRIES: dict[str, tuple[str, ...]] = {
    "mpr_devstack.s3_server": ("moto.s3.urls", "moto.s3.responses", "moto.s3.models"),
    "mpr_catalog": ("uvloop",),
    "mpr_scanner": (),
    "mpr_transcoder": (),
    "mpr_api": (),
}

# Read when the interpreter starts, not through os.environ: a launcher started with other values
# would give its children other flags, paths or encodings. PYTHONUNBUFFERED is the exception: each
# child builds its own stdio from its own environment.
_CHILD_APPLIES = frozenset({"PYTHONUNBUFFERED"})


def entry_module(module: str) -> str:
    """The module ``python -m module`` executes: a package's ``__main__``."""
    spec = importlib.util.find_spec(module)
    if spec is not None and spec.submodule_search_locations is not None:
        return f"{module}.__main__"
    return module


def load(module: str) -> None:
    """Imports ``module``'s entry and its extras, then forgets the entry itself: runpy executes it
    afresh as ``__main__`` (and warns about an entry already imported under its own name)."""
    entry = entry_module(module)
    importlib.import_module(entry)
    for extra in ENTRIES.get(module, ()):
        importlib.import_module(extra)
    sys.modules.pop(entry, None)
    parent, _, name = entry.rpartition(".")
    if parent and parent in sys.modules and hasattr(sys.modules[parent], name):
        delattr(sys.modules[parent], name)


class EnvReads:
    """The environment variables imports read (``os.environ[...]``, ``.get``, ``os.getenv``, ``in``)
    and the value each had. Copies of the whole environment (``dict(os.environ)``, iterating it) are
    not reads of any one variable: wsgiref keeps such a copy for CGI, which no service uses."""

    def __init__(self) -> None:
        self.values: dict[str, str | None] = {}
        self.startup = {
            k: v for k, v in os.environ.items() if k.startswith("PYTHON") and k not in _CHILD_APPLIES
        }

    @contextmanager
    def recording(self) -> Iterator[None]:
        cls = type(os.environ)
        original: Callable = cls.__getitem__
        values = self.values

        def getitem(env, key):
            caller = sys._getframe(1).f_code
            whole = caller.co_name in ("__iter__", "copy")  # ItemsView/ValuesView, os.environ.copy()
            try:
                value = original(env, key)
            except KeyError:
                if not whole:
                    values.setdefault(key, None)
                raise
            if not whole:
                values.setdefault(key, value)
            return value

        cls.__getitem__ = getitem  # type: ignore[method-assign]
        try:
            yield
        finally:
            cls.__getitem__ = original  # type: ignore[method-assign]

    def mismatch(self, env: dict[str, str]) -> str | None:
        """Why a child with ``env`` must not be forked from here, or None."""
        for key, value in self.values.items():
            if env.get(key) != value:
                return f"{key} differs from the value the launcher's imports read"
        wanted = {k: v for k, v in env.items() if k.startswith("PYTHON") and k not in _CHILD_APPLIES}
        if wanted != self.startup:
            differ = sorted(set(wanted.items()) ^ set(self.startup.items()))
            return f"{differ[0][0]} differs from the launcher's interpreter settings"
        return None


def module_randoms() -> list[random.Random]:
    """Generators made at import time (moto's ``mock_random``, …): a new process seeds them from the
    OS, a forked one would inherit the launcher's state; ``random``'s own is reseeded at fork already."""
    found: dict[int, random.Random] = {}
    for module in list(sys.modules.values()):
        for value in list(getattr(module, "__dict__", {}).values()):
            if isinstance(value, random.Random) and not isinstance(value, random.SystemRandom):
                if value is not random._inst:
                    found[id(value)] = value
    return list(found.values())
