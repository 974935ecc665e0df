"""Job templates and automation rules: the contract (stored in the ``mpr-templates`` and ``mpr-rules`` KV
buckets, answered by the API) and the pure logic that applies a template to a request and matches a rule
against a registered object. Pure functions, unit-tested; nothing here touches NATS or S3.

A template is the defaults of a job (kind, preset, output key pattern, options); a request naming it gives
what it wants different. A rule says which registered objects (bucket, key prefix and/or glob, conditions
on ffprobe's metadata) start a job from which template, once per (bucket, key, etag, rule)."""

from __future__ import annotations

import hashlib
import math
import posixpath
import re
from collections.abc import Iterable, Mapping
from functools import lru_cache
from typing import Annotated, Any, Literal, get_args

import msgspec

from .events import JobKind, JobRequested, MediaInfo, Priority
from .jobs import JobRequestError, normalize_job
from .presets import DEFAULT_PRESET

MAX_NAME_CHARS = 64
MAX_TEXT_CHARS = 1000  # descriptions
MAX_PATTERN_CHARS = 1024  # an S3 key's length
MAX_CONDITIONS = 32
MAX_IN_VALUES = 64
# Template names become KV keys and "<name>@<revision>" references: no '@', no '/'; a '.' only between
# other characters (a KV key's tokens are never empty).
NAME_PATTERN = "^[A-Za-z0-9](?:[A-Za-z0-9_-]|\\.(?=[A-Za-z0-9_-]))*$"
RULE_ID_PATTERN = "^[A-Za-z0-9][A-Za-z0-9_-]*$"
BUCKET_PATTERN = "^[a-z0-9][a-z0-9.-]*[a-z0-9]$"

Name = Annotated[str, msgspec.Meta(min_length=1, max_length=MAX_NAME_CHARS, pattern=NAME_PATTERN)]
RuleId = Annotated[str, msgspec.Meta(min_length=1, max_length=MAX_NAME_CHARS, pattern=RULE_ID_PATTERN)]
Text = Annotated[str, msgspec.Meta(max_length=MAX_TEXT_CHARS)]
Pattern = Annotated[str, msgspec.Meta(max_length=MAX_PATTERN_CHARS)]
Seconds = Annotated[float, msgspec.Meta(ge=0)]
# A KV revision is a stream sequence (a uint64; msgspec bounds ints at int64, and no stream gets near
# it): a larger number names no revision and is a 400, never a 500.
MAX_REVISION = 2**63 - 1
Revision = Annotated[int, msgspec.Meta(ge=1, le=MAX_REVISION)]


class TemplateError(ValueError):
    """A template, rule or reference that cannot be used; the message says why (a client's 400)."""


# --- templates -----------------------------------------------------------------------------------
class Template(msgspec.Struct, kw_only=True, forbid_unknown_fields=True, omit_defaults=True):
    """The defaults of a job. ``output_key`` is a pattern: see :data:`PLACEHOLDERS`."""

    kind: JobKind
    preset: Annotated[str, msgspec.Meta(max_length=MAX_NAME_CHARS)] | None = None
    output_key: Annotated[Pattern, msgspec.Meta(min_length=1)] | None = None
    loudnorm: bool = False
    storyboard: bool = False
    priority: Priority = "normal"
    start: Seconds | None = None
    end: Seconds | None = None
    description: Text = ""


# What a request may take from a template: the fields of both (the request's own fields win).
TEMPLATE_FIELDS: tuple[str, ...] = (
    "kind",
    "preset",
    "output_key",
    "loudnorm",
    "storyboard",
    "priority",
    "start",
    "end",
)

# Placeholders of an output key pattern, for a source key "shows/ep1/clip.mov":
PLACEHOLDERS: dict[str, str] = {
    "key": "the source key (shows/ep1/clip.mov)",
    "path": "the source key without its extension (shows/ep1/clip)",
    "dir": "the source key's folder (shows/ep1; empty at the bucket's root)",
    "name": "the source's file name (clip.mov)",
    "stem": "the source's file name without its extension (clip)",
    "ext": "the source's extension (.mov)",
    "job_id": "the job's id",
    "kind": "the job's kind",
    "preset": "the job's preset",
}
_PLACEHOLDER = re.compile(r"\{([a-z_]+)\}")
_DEFAULT_PRESETS: dict[str, str] = {kind: preset for kind, preset in DEFAULT_PRESET.items()}


def render_output_key(pattern: str, source_key: str, job_id: str, kind: str, preset: str | None) -> str:
    """The output key a pattern names for one job. Unknown placeholders and stray braces are errors
    (a pattern is never handed to ``str.format``); empty folders left by an empty ``{dir}`` collapse."""
    folder, name = posixpath.split(source_key)
    stem, ext = posixpath.splitext(name)
    values = {
        "key": source_key,
        "path": posixpath.splitext(source_key)[0],
        "dir": folder,
        "name": name,
        "stem": stem,
        "ext": ext,
        "job_id": job_id,
        "kind": kind,
        "preset": preset or _DEFAULT_PRESETS.get(kind, ""),
    }

    def value(m: re.Match[str]) -> str:
        if m.group(1) not in values:
            raise TemplateError(
                f"output_key: unknown placeholder {{{m.group(1)}}}; known: {', '.join(PLACEHOLDERS)}"
            )
        return values[m.group(1)]

    rendered = _PLACEHOLDER.sub(value, pattern)
    rest = _PLACEHOLDER.sub("", pattern)
    if "{" in rest or "}" in rest:
        raise TemplateError("output_key: a brace that is not part of a {placeholder}")
    return re.sub("/{2,}", "/", rendered).lstrip("/")


def merged_fields(template: Template, given: Mapping[str, Any]) -> dict[str, Any]:
    """The template's job fields, each replaced by the request's where the request gives one."""
    fields = {f: getattr(template, f) for f in TEMPLATE_FIELDS}
    fields.update({f: v for f, v in given.items() if f in TEMPLATE_FIELDS})
    return fields


def given_fields(request: msgspec.Struct) -> dict[str, Any]:
    """The template fields a request struct gives: those it has set to something other than its
    default (a request cannot tell "left out" from "given as the default")."""
    given = {}
    for f in msgspec.structs.fields(request):
        if f.name not in TEMPLATE_FIELDS:
            continue
        value = getattr(request, f.name)
        if f.required or value != f.default:
            given[f.name] = value
    return given


def templated_fields(
    template: Template, given: Mapping[str, Any], source_key: str, job_id: str
) -> dict[str, Any]:
    """A request's job fields with the template's as defaults and the template's output key pattern
    rendered for this job (a request's own output key is taken as it is)."""
    fields = merged_fields(template, given)
    if "output_key" not in given and template.output_key is not None:
        fields["output_key"] = render_output_key(
            template.output_key, source_key, job_id, fields["kind"], fields["preset"]
        )
    return fields


def job_from_template(
    template: Template,
    ref: str,
    *,
    source_key: str,
    job_id: str,
    given: Mapping[str, Any] | None = None,
    **job: Any,
) -> JobRequested:
    """A job request made from a template (``ref`` = "<name>@<revision>"), not yet normalised;
    ``job`` sets the request's other fields (source_bucket, requested_by, rule, …)."""
    fields = templated_fields(template, given or {}, source_key, job_id)
    return JobRequested(job_id=job_id, source_key=source_key, template=ref, **fields, **job)


SAMPLE_SOURCE_KEY = "sample/clip.mp4"
SAMPLE_JOB_ID = "sample-job"


def check_template(template: Template) -> JobRequested:
    """Raise :class:`TemplateError` unless the template makes a valid job (the sample job it makes is
    returned): the same rules as any job request (:func:`mpr_common.jobs.normalize_job`)."""
    job = job_from_template(template, "check@1", source_key=SAMPLE_SOURCE_KEY, job_id=SAMPLE_JOB_ID)
    try:
        return normalize_job(job)
    except JobRequestError as exc:
        raise TemplateError(f"the template does not make a valid job: {exc}") from None


def template_ref(name: str, revision: int) -> str:
    return f"{name}@{revision}"


def parse_template_ref(ref: str) -> tuple[str, int | None]:
    """``name`` or ``name@revision`` → (name, revision or None for the latest)."""
    name, at, rev = ref.partition("@")
    if not re.fullmatch(NAME_PATTERN, name) or len(name) > MAX_NAME_CHARS:
        raise TemplateError(f"template: {ref[:100]!r} is not a template name (or name@revision)")
    if not at:
        return name, None
    revision = parse_revision(rev)
    if revision is None:
        raise TemplateError(
            f"template: the revision in {ref[:100]!r} must be a number from 1 to {MAX_REVISION}"
        )
    return name, revision


def parse_revision(text: str) -> int | None:
    """A revision written in decimal (1 … MAX_REVISION), or None. Checked by length before ``int``:
    a number of thousands of digits is refused without being converted."""
    if not text.isascii() or not text.isdigit() or len(text) > len(str(MAX_REVISION)):
        return None
    value = int(text)
    return value if 1 <= value <= MAX_REVISION else None


# --- rules ---------------------------------------------------------------------------------------
ConditionField = Literal[
    "width",
    "height",
    "duration",
    "fps",
    "bit_rate",
    "sample_rate",
    "channels",
    "size",
    "video_codec",
    "audio_codec",
    "format",
    "has_video",
    "has_audio",
    "probed",
]
ConditionOp = Literal["<", "<=", ">", ">=", "==", "!=", "in"]
CONDITION_FIELDS: tuple[str, ...] = get_args(ConditionField)
CONDITION_OPS: tuple[str, ...] = get_args(ConditionOp)
NUMBER_FIELDS = frozenset(
    {"width", "height", "duration", "fps", "bit_rate", "sample_rate", "channels", "size"}
)
TEXT_FIELDS = frozenset({"video_codec", "audio_codec", "format"})
FLAG_FIELDS = frozenset({"has_video", "has_audio", "probed"})
_ORDER_OPS = frozenset({"<", "<=", ">", ">="})

Scalar = float | str | bool
ConditionValue = (
    float | str | bool | Annotated[list[float | str], msgspec.Meta(min_length=1, max_length=MAX_IN_VALUES)]
)


class Condition(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """``field op value`` over the object's ffprobe metadata (and its size, in bytes)."""

    field: ConditionField
    op: ConditionOp
    value: ConditionValue


class Rule(msgspec.Struct, kw_only=True, forbid_unknown_fields=True, omit_defaults=True):
    """Objects registered in ``bucket`` (default S3_BUCKET_IN) whose key starts with ``prefix`` and
    matches ``glob`` and whose metadata meets every condition start one job from ``template``."""

    template: Name
    template_revision: Revision | None = None  # pinned; None: the template's latest revision
    name: Text = ""
    bucket: Annotated[str, msgspec.Meta(min_length=3, max_length=63, pattern=BUCKET_PATTERN)] | None = None
    prefix: Pattern = ""
    glob: Annotated[Pattern, msgspec.Meta(min_length=1)] | None = None
    conditions: Annotated[list[Condition], msgspec.Meta(max_length=MAX_CONDITIONS)] = msgspec.field(
        default_factory=list
    )
    enabled: bool = True
    priority: Priority | None = None  # overrides the template's queue class
    description: Text = ""


def check_rule(rule: Rule) -> None:
    """Raise :class:`TemplateError` for a rule that can never work (a malformed glob, a condition whose
    operator or value does not fit its field)."""
    if rule.glob is not None:
        compile_glob(rule.glob)
    for i, c in enumerate(rule.conditions):
        where = f"conditions[{i}] ({c.field} {c.op})"
        values = c.value if isinstance(c.value, list) else [c.value]
        if (c.op == "in") != isinstance(c.value, list):
            raise TemplateError(f"{where}: 'in' takes a list of values, the other operators one value")
        if c.field in FLAG_FIELDS:
            if c.op not in ("==", "!=") or not isinstance(c.value, bool):
                raise TemplateError(f"{where}: {c.field} is true or false: use == or != with true/false")
        elif c.field in NUMBER_FIELDS:
            if not all(_is_number(v) for v in values):
                raise TemplateError(f"{where}: {c.field} is a number")
        elif c.op in _ORDER_OPS or not all(isinstance(v, str) for v in values):
            raise TemplateError(f"{where}: {c.field} is a name: use ==, != or in with strings")


def _is_number(v: object) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)


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
            raise TemplateError(f"glob: an empty character class in {glob!r}")
        singles: set[str] = set()
        ranges: list[tuple[str, str]] = []
        j = 0
        while j < len(body):
            if j + 2 < len(body) and body[j + 1] == "-":
                lo, hi = body[j], body[j + 2]
                if lo > hi:
                    raise TemplateError(
                        f"glob: the range {lo}-{hi} in {glob!r} is reversed (write {hi}-{lo})"
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
            kind, data = self._kinds[st], self._data[st]
            if kind == _CHAR:
                if c == data:
                    targets.append(self._outs[st][0])
            elif kind == _ANY:
                if c != "/":
                    targets.append(self._outs[st][0])
            elif kind == _CLASS:
                if c in data:
                    targets.append(self._outs[st][0])
            elif kind == _STAR:
                if c != "/":
                    targets.append(st)
            elif kind == _DSTAR:
                targets.append(st)
            elif kind == _TO_SLASH:
                targets.append(st)
                if c == "/":
                    targets.append(self._outs[st][0])
        return self._eclose(targets, counter)

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


def _parse_glob(glob: str) -> list[Any]:
    """Tokens: ("lit", c), ("any",), ("class", _Class), ("star",), ("dstar",), ("dstar/",), and
    ("alt", [tokens, …]) for ``{a,b}`` (not nested)."""
    if len(glob) > MAX_GLOB_CHARS:
        raise TemplateError(f"glob: at most {MAX_GLOB_CHARS} characters (use prefix for a long folder)")
    top: list[Any] = []
    alts: list[list[Any]] | None = None
    out = top
    stars = double = 0
    i, n = 0, len(glob)
    while i < n:
        c = glob[i]
        if glob.startswith("**", i):
            stars += 1
            double += 1
            if glob.startswith("**/", i):
                out.append(("dstar/",))
                i += 3
            else:
                out.append(("dstar",))
                i += 2
            continue
        if c == "*":
            stars += 1
            out.append(("star",))
        elif c == "?":
            out.append(("any",))
        elif c == "[":
            end = glob.find("]", i + 2)
            if end < 0:
                raise TemplateError(f"glob: unclosed '[' in {glob!r}")
            out.append(("class", _Class(glob[i + 1 : end], glob)))
            i = end + 1
            continue
        elif c == "{":
            if alts is not None:
                raise TemplateError(f"glob: nested '{{' in {glob!r}")
            alts = [[]]
            out = alts[0]
        elif c == "}" and alts is not None:
            top.append(("alt", alts))
            alts, out = None, top
        elif c == "," and alts is not None:
            alts.append([])
            out = alts[-1]
        else:
            out.append(("lit", c))
        i += 1
    if alts is not None:
        raise TemplateError(f"glob: unclosed '{{' in {glob!r}")
    if stars > MAX_GLOB_STARS:
        raise TemplateError(f"glob: at most {MAX_GLOB_STARS} '*' or '**' in one glob ({stars} in {glob!r})")
    if double > MAX_GLOB_DOUBLE_STARS:
        raise TemplateError(f"glob: at most {MAX_GLOB_DOUBLE_STARS} '**' in one glob ({double} in {glob!r})")
    return top


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


def key_matches(rule: Rule, key: str) -> bool:
    """``key`` is under the rule's prefix and matches its glob. A stored glob this version refuses
    (written before its bounds) matches nothing rather than failing every registration."""
    if not key.startswith(rule.prefix):
        return False
    if rule.glob is None:
        return True
    try:
        return compile_glob(rule.glob).run(key)
    except TemplateError:
        return False


def facts(info: MediaInfo | None, size: int) -> dict[str, Any]:
    """What conditions read about an object: ffprobe's metadata (None where it found nothing, and for
    every metadata field when the probe failed) and the object's size."""
    if info is None:
        return {"size": size, "probed": False}
    return {
        "width": info.width,
        "height": info.height,
        "duration": info.duration,
        "fps": info.fps,
        "bit_rate": info.bit_rate,
        "sample_rate": info.sample_rate,
        "channels": info.channels,
        "size": size,
        "video_codec": info.video_codec,
        "audio_codec": info.audio_codec,
        "format": info.format_name,
        "has_video": info.video_codec is not None,
        "has_audio": info.audio_codec is not None,
        "probed": True,
    }


def condition_holds(c: Condition, known: Mapping[str, Any]) -> bool:
    """One condition over :func:`facts`. A value the probe did not give (the height of a sound file,
    anything of an object ffprobe could not read) meets no condition, whatever the operator. Names
    compare case-insensitively; ``format`` is ffprobe's list of names ("mov,mp4,m4a,…"): ``==`` means
    one of them."""
    actual = known.get(c.field)
    if actual is None:
        return False
    if c.field == "format":
        names = {n.strip().lower() for n in str(actual).split(",")}
        wanted = {str(v).lower() for v in (c.value if isinstance(c.value, list) else [c.value])}
        return bool(names & wanted) != (c.op == "!=")
    if isinstance(actual, str):
        actual = actual.lower()
        value: Any = [str(v).lower() for v in c.value] if isinstance(c.value, list) else str(c.value).lower()
    else:
        value = c.value
    if c.op == "in":
        return actual in value
    if c.op == "==":
        return bool(actual == value)
    if c.op == "!=":
        return bool(actual != value)
    if not _is_number(actual) or not _is_number(value):
        return False
    return bool(
        {"<": actual < value, "<=": actual <= value, ">": actual > value, ">=": actual >= value}[c.op]
    )


def rule_matches(
    rule: Rule, default_bucket: str, bucket: str, key: str, info: MediaInfo | None, size: int = 0
) -> bool:
    """Does an object registered in ``bucket`` match ``rule``? An object ffprobe could not read meets
    no metadata condition, so only rules without conditions (or with ``probed == false``) start jobs
    for it — their jobs fail with the transcoder's reason, where they can be seen."""
    if (rule.bucket or default_bucket) != bucket or not key_matches(rule, key):
        return False
    known = facts(info, size)
    return all(condition_holds(c, known) for c in rule.conditions)


def firing_id(rule_id: str, bucket: str, key: str, etag: str) -> str:
    """One id per (rule, bucket, key, etag): the key of its claim in ``mpr-rule-firings``."""
    return hashlib.sha256(f"{rule_id}\x00{bucket}\x00{key}\x00{etag}".encode()).hexdigest()[:40]


def rule_job_id(rule_id: str, bucket: str, key: str, etag: str) -> str:
    """The id of the job a rule starts for one object version: the same on every API replica and on
    every redelivery (it is also the job's Nats-Msg-Id), so it is never started twice."""
    return "r-" + firing_id(rule_id, bucket, key, etag)[:32]


FiringState = Literal["claimed", "started", "refused"]


class Firing(msgspec.Struct, kw_only=True, omit_defaults=True):
    """A rule's claim on one object version in ``mpr-rule-firings``: ``claimed`` before its job is
    published, ``started`` once JetStream stored it, ``refused`` when the job could not be made."""

    rule: str
    bucket: str
    key: str
    etag: str
    job_id: str
    template: str = ""  # "<name>@<revision>"
    state: FiringState = "claimed"
    error: str | None = None
    at: float = 0.0


def rule_job(
    rule_id: str,
    rule: Rule,
    template: Template,
    revision: int,
    *,
    bucket: str,
    key: str,
    etag: str,
    default_bucket: str,
) -> JobRequested:
    """The job ``rule`` starts for one object version, from revision ``revision`` of its template,
    normalised; :class:`TemplateError` when the template cannot make a valid job for this object (e.g.
    an output key pattern whose extension does not fit the source)."""
    job = job_from_template(
        template,
        template_ref(rule.template, revision),
        source_key=key,
        job_id=rule_job_id(rule_id, bucket, key, etag),
        given={"priority": rule.priority} if rule.priority is not None else {},
        source_bucket=None if bucket == default_bucket else bucket,
        requested_by=f"rule:{rule_id}",
        rule=rule_id,
    )
    try:
        return normalize_job(job)
    except JobRequestError as exc:
        raise TemplateError(str(exc)) from None
