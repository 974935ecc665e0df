"""Rule globs over whole S3 keys, compiled into an NFA run without backtracking (the cost of a match is
bounded whatever the pattern). Pure code."""

from __future__ import annotations

from collections.abc import Iterable
from functools import lru_cache
from typing import Any

from .templates import TemplateError

MAX_GLOB_CHARS = 256
MAX_GLOB_STARS = 16  # '*' and '**' together
MAX_GLOB_DOUBLE_STARS = 4  # '**' (each may cross any number of folders)
_DFA_CACHE = 4096  # (state set, character) transitions remembered per glob

# NFA states of a compiled glob (Thompson's construction): what each one does with the next character.
_CHAR, _ANY, _CLASS, _STAR, _DSTAR, _TO_SLASH, _SPLIT, _MATCH = range(8)


class _Class:
    """``[...]``: single characters and ranges, maybe negated (it may match '/', as it always did)."""

    __slots__ = ("negate", "ranges", "singles")

    def __init__(self, body: str, glob: str) -> None:
        self.negate = body.startswith("!")
        if self.negate:
            body = body[1:]
        if not body:
            raise TemplateError(f"glob: an empty character class in {glob!r}", "glob")
        singles: set[str] = set()
        ranges: list[tuple[str, str]] = []
        j = 0
        while j < len(body):
            if j + 2 < len(body) and body[j + 1] == "-":
                lo, hi = body[j], body[j + 2]
                if lo > hi:
                    raise TemplateError(
                        f"glob: the range {lo}-{hi} in {glob!r} is reversed (write {hi}-{lo})", "glob"
                    )
                ranges.append((lo, hi))
                j += 3
            else:
                singles.add(body[j])
                j += 1
        self.singles = frozenset(singles)
        self.ranges = tuple(ranges)

    def __contains__(self, c: str) -> bool:
        found = c in self.singles or any(lo <= c <= hi for lo, hi in self.ranges)
        return found != self.negate


class Glob:
    """A compiled glob (:func:`compile_glob`): an NFA over whole keys, run as a set of states (no
    backtracking), so matching costs at most (key length + 1) × (number of states) steps whatever the
    pattern; the state-set transitions seen are remembered (a lazily built DFA, bounded)."""

    __slots__ = ("_accepts", "_cache", "_data", "_ids", "_kinds", "_outs", "_sets", "pattern", "start")

    def __init__(self, pattern: str) -> None:
        self.pattern = pattern
        self._kinds: list[int] = []
        self._data: list[Any] = []
        self._outs: list[tuple[int, ...]] = []
        self._cache: dict[tuple[int, str], int] = {}  # (state set number, character) -> number
        self._ids: dict[frozenset[int], int] = {}
        self._sets: list[frozenset[int]] = []  # by number; 0: the start's closure
        self._accepts: list[bool] = []
        self.start = 0

    @property
    def states(self) -> int:
        return len(self._kinds)

    def _add(self, kind: int, data: Any = None) -> int:
        self._kinds.append(kind)
        self._data.append(data)
        self._outs.append(())
        return len(self._kinds) - 1

    def _eclose(self, seeds: Iterable[int], counter: list[int] | None = None) -> frozenset[int]:
        """The states reachable from ``seeds`` without consuming a character (the loops of ``*`` and
        ``**`` are themselves states that consume: they stay in the set)."""
        seen: set[int] = set()
        stack = list(seeds)
        while stack:
            st = stack.pop()
            if st in seen:
                continue
            seen.add(st)
            if counter is not None:
                counter[0] += 1
            kind = self._kinds[st]
            if kind in (_SPLIT, _STAR, _DSTAR):
                stack.extend(self._outs[st])
        return frozenset(seen)

    def _step(self, current: frozenset[int], c: str, counter: list[int] | None = None) -> frozenset[int]:
        targets: list[int] = []
        for st in current:
            if counter is not None:
                counter[0] += 1
            targets.extend(self._next(st, c))
        return self._eclose(targets, counter)

    def _next(self, st: int, c: str) -> tuple[int, ...]:
        """Where state ``st`` goes on character ``c`` (nowhere: an empty tuple)."""
        kind = self._kinds[st]
        if kind == _DSTAR:
            return (st,)
        if kind == _STAR:
            return (st,) if c != "/" else ()
        if kind == _TO_SLASH:  # stays until a '/', which also leads on
            return (st, self._outs[st][0]) if c == "/" else (st,)
        return (self._outs[st][0],) if _takes(kind, self._data[st], c) else ()

    def run(self, key: str, counter: list[int] | None = None) -> bool:
        """Does the whole key match? ``counter`` (tests): [steps], incremented for every state visited
        (the remembered transitions are then not used)."""
        if counter is not None:
            return self._simulate(self._eclose((self.start,), counter), key, counter)
        # the lazily built DFA: state sets numbered (0: the start's), (number, character) -> number
        if not self._sets:
            self._number(self._eclose((self.start,)))
        trans, sid = self._cache, 0
        for i, c in enumerate(key):
            nxt = trans.get((sid, c))
            if nxt is None:
                if len(trans) >= _DFA_CACHE:  # remembered enough: simulate the rest of this key
                    return self._simulate(self._sets[sid], key[i:])
                nxt = trans[(sid, c)] = self._number(self._step(self._sets[sid], c))
            if not self._sets[nxt]:  # nothing can match any more
                return False
            sid = nxt
        return self._accepts[sid]

    def _simulate(self, current: frozenset[int], key: str, counter: list[int] | None = None) -> bool:
        for c in key:
            if not current:
                return False
            current = self._step(current, c, counter)
        return any(self._kinds[st] == _MATCH for st in current)

    def _number(self, states: frozenset[int]) -> int:
        """The number of a state set (at most one per remembered transition, plus the start's)."""
        sid = self._ids.get(states)
        if sid is None:
            sid = self._ids[states] = len(self._sets)
            self._sets.append(states)
            self._accepts.append(any(self._kinds[st] == _MATCH for st in states))
        return sid

    def fullmatch(self, key: str) -> bool:
        return self.run(key)


def _takes(kind: int, data: Any, c: str) -> bool:
    """Does a state that reads one character (a literal, ``?``, a class) take ``c``? Other states
    (splits, the match) read none."""
    if kind == _CHAR:
        return c == data
    if kind == _ANY:
        return c != "/"
    return kind == _CLASS and c in data


def _parse_glob(glob: str) -> list[Any]:
    """Tokens: ("lit", c), ("any",), ("class", _Class), ("star",), ("dstar",), ("dstar/",), and
    ("alt", [tokens, …]) for ``{a,b}`` (not nested)."""
    if len(glob) > MAX_GLOB_CHARS:
        raise TemplateError(
            f"glob: at most {MAX_GLOB_CHARS} characters (use prefix for a long folder)", "glob"
        )
    top: list[Any] = []
    alts: list[list[Any]] | None = None  # the alternatives of the {…} being read
    out = top
    i = 0
    while i < len(glob):
        c = glob[i]
        if c == "{":
            if alts is not None:
                raise TemplateError(f"glob: nested '{{' in {glob!r}", "glob")
            alts = [[]]
            out = alts[0]
        elif c in "},":
            if alts is None:  # outside braces: a literal
                out.append(("lit", c))
            elif c == ",":
                alts.append([])
                out = alts[-1]
            else:
                top.append(("alt", alts))
                alts, out = None, top
        else:
            token, i = _token(glob, i)
            out.append(token)
            continue
        i += 1
    if alts is not None:
        raise TemplateError(f"glob: unclosed '{{' in {glob!r}", "glob")
    _check_stars(glob, top)
    return top


def _token(glob: str, i: int) -> tuple[Any, int]:
    """The token that starts at ``glob[i]`` (not a brace or a comma between braces), and where the next
    one starts."""
    if glob.startswith("**/", i):
        return ("dstar/",), i + 3
    if glob.startswith("**", i):
        return ("dstar",), i + 2
    c = glob[i]
    if c == "*":
        return ("star",), i + 1
    if c == "?":
        return ("any",), i + 1
    if c == "[":
        end = glob.find("]", i + 2)
        if end < 0:
            raise TemplateError(f"glob: unclosed '[' in {glob!r}", "glob")
        return ("class", _Class(glob[i + 1 : end], glob)), end + 1
    return ("lit", c), i + 1


def _count(tokens: list[Any], kinds: frozenset[str]) -> int:
    """Tokens of ``kinds``, those of every alternative included."""
    n = 0
    for token in tokens:
        if token[0] == "alt":
            n += sum(_count(alt, kinds) for alt in token[1])
        elif token[0] in kinds:
            n += 1
    return n


def _check_stars(glob: str, tokens: list[Any]) -> None:
    stars = _count(tokens, frozenset({"star", "dstar", "dstar/"}))
    if stars > MAX_GLOB_STARS:
        raise TemplateError(
            f"glob: at most {MAX_GLOB_STARS} '*' or '**' in one glob ({stars} in {glob!r})", "glob"
        )
    double = _count(tokens, frozenset({"dstar", "dstar/"}))
    if double > MAX_GLOB_DOUBLE_STARS:
        raise TemplateError(
            f"glob: at most {MAX_GLOB_DOUBLE_STARS} '**' in one glob ({double} in {glob!r})", "glob"
        )


def _compile(g: Glob, tokens: list[Any], after: int) -> int:
    """States for ``tokens`` leading to state ``after``, built from the end (every edge points to a
    state made before it, so the states reachable without a character never loop); returns the first."""
    nxt = after
    for token in reversed(tokens):
        kind = token[0]
        if kind == "lit":
            st = g._add(_CHAR, token[1])
        elif kind == "any":
            st = g._add(_ANY)
        elif kind == "class":
            st = g._add(_CLASS, token[1])
        elif kind == "star":
            st = g._add(_STAR)
        elif kind == "dstar":
            st = g._add(_DSTAR)
        elif kind == "dstar/":  # no folder, or anything up to and including a '/'
            loop = g._add(_TO_SLASH)
            g._outs[loop] = (nxt,)
            st = g._add(_SPLIT)
            g._outs[st] = (nxt, loop)
            nxt = st
            continue
        else:  # alternatives
            starts = tuple(_compile(g, alt, nxt) for alt in token[1])
            st = g._add(_SPLIT)
            g._outs[st] = starts
            nxt = st
            continue
        g._outs[st] = (nxt,)
        nxt = st
    return nxt


@lru_cache(maxsize=1024)
def compile_glob(glob: str) -> Glob:
    """A glob over whole keys: ``*`` and ``?`` stay within one folder, ``**`` crosses folders (``**/``
    also matches no folder), ``[abc]``/``[a-z]``/``[!0-9]`` a character class, ``{mp4,mov}``
    alternatives. :class:`TemplateError` for a malformed glob (unclosed, nested braces, a reversed
    range) or one over the bounds (MAX_GLOB_CHARS, MAX_GLOB_STARS, MAX_GLOB_DOUBLE_STARS)."""
    tokens = _parse_glob(glob)
    g = Glob(glob)
    match = g._add(_MATCH)
    g.start = _compile(g, tokens, match)
    return g
