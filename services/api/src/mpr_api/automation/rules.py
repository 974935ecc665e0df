"""Automation rules: the contract of the ``mpr-rules`` and ``mpr-rule-firings`` KV buckets, and the pure
logic that matches a rule against a registered object. A rule says which registered objects (bucket, key
prefix and/or glob, conditions on ffprobe's metadata) start a job from which template, once per (bucket,
key, etag, rule). Nothing here touches NATS or S3."""

from __future__ import annotations

import hashlib
import math
from collections.abc import Mapping
from typing import Annotated, Any, Literal, get_args

import msgspec

from mpr_common.events import JobRequested, MediaInfo, Priority
from mpr_common.jobs import JobRequestError, normalize_job

from .globs import compile_glob
from .templates import (
    BUCKET_PATTERN,
    MAX_CONDITIONS,
    MAX_IN_VALUES,
    Name,
    Pattern,
    Revision,
    Template,
    TemplateError,
    Text,
    job_from_template,
    template_ref,
)

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
# What a rule fires on: an object registered (a scan or a notification found it), or a transcode or trim
# whose output was not kept (job.completed, outcome "not_kept"): its job then runs on that job's source,
# e.g. a fallback preset. Each fires once per object version, or per run of the job not kept.
RuleTrigger = Literal["object.registered", "job.not_kept"]
RULE_TRIGGERS: tuple[str, ...] = get_args(RuleTrigger)
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
    on: RuleTrigger = "object.registered"


def not_kept_version(job_id: str, retry: int | None) -> str:
    """What a rule on job.not_kept fires once for, in place of an object's etag: one run of one job."""
    return f"job.not_kept:{job_id}:{retry or 0}"


def check_rule(rule: Rule) -> None:
    """Raise :class:`TemplateError` for a rule that can never work (a malformed glob, a condition whose
    operator or value does not fit its field)."""
    if rule.glob is not None:
        compile_glob(rule.glob)
    if rule.on == "job.not_kept" and rule.conditions:
        raise TemplateError(
            "conditions read a registered object's metadata: a rule on job.not_kept takes none (its bucket, "
            "prefix and glob match the source of the job not kept)",
            "conditions",
        )
    for i, c in enumerate(rule.conditions):
        where = f"conditions[{i}] ({c.field} {c.op})"
        values = c.value if isinstance(c.value, list) else [c.value]
        if (c.op == "in") != isinstance(c.value, list):
            raise TemplateError(
                f"{where}: 'in' takes a list of values, the other operators one value", "conditions"
            )
        if c.field in FLAG_FIELDS:
            if c.op not in ("==", "!=") or not isinstance(c.value, bool):
                raise TemplateError(
                    f"{where}: {c.field} is true or false: use == or != with true/false", "conditions"
                )
        elif c.field in NUMBER_FIELDS:
            if not all(_is_number(v) for v in values):
                raise TemplateError(f"{where}: {c.field} is a number", "conditions")
        elif c.op in _ORDER_OPS or not all(isinstance(v, str) for v in values):
            raise TemplateError(f"{where}: {c.field} is a name: use ==, != or in with strings", "conditions")


def _is_number(v: object) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)


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
        raise TemplateError(str(exc), exc.field) from None
