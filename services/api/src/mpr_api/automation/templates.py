"""Job templates: the contract of the ``mpr-templates`` KV bucket (and of the API's templates), and the
pure logic that applies a template to a request. Nothing here touches NATS or S3.

A template is the defaults of a job (kind, preset, output key pattern, options); a request naming it gives
what it wants different. Rules (``rules.py``) start jobs from templates."""

from __future__ import annotations

import posixpath
import re
from collections.abc import Mapping
from typing import Annotated, Any

import msgspec

from mpr_common.audio_tracks import AudioLanguages
from mpr_common.content_keys import EncryptionMethod
from mpr_common.events import (
    JobKind,
    JobRequested,
    KeepIf,
    LadderKind,
    PreviewOptions,
    Priority,
    QualityTarget,
    Watermark,
)
from mpr_common.jobs import JobRequestError, normalize_job
from mpr_common.presets import DEFAULT_PRESET
from mpr_common.subtitles import SubtitleLanguages

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
    """A template, rule or reference that cannot be used; the message says why (a client's 400), and
    ``field`` names the field it concerns (None: the whole)."""

    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


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
    chunk_seconds: Seconds | None = None
    progressive: bool | None = None
    audio_languages: AudioLanguages | None = None
    subtitle_languages: SubtitleLanguages | None = None
    burn_subtitles: Annotated[str, msgspec.Meta(min_length=2, max_length=35)] | None = None
    encryption: EncryptionMethod | None = None
    watermark: Watermark | None = None
    preview: PreviewOptions | None = None
    keep_if: KeepIf | None = None
    min_psnr: float | None = None
    min_ssim: float | None = None
    ladder: LadderKind | None = None
    quality_target: QualityTarget | None = None
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
    "chunk_seconds",
    "progressive",
    "audio_languages",
    "subtitle_languages",
    "burn_subtitles",
    "encryption",
    "watermark",
    "preview",
    "keep_if",
    "min_psnr",
    "min_ssim",
    "ladder",
    "quality_target",
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
                f"output_key: unknown placeholder {{{m.group(1)}}}; known: {', '.join(PLACEHOLDERS)}",
                "output_key",
            )
        return values[m.group(1)]

    rendered = _PLACEHOLDER.sub(value, pattern)
    rest = _PLACEHOLDER.sub("", pattern)
    if "{" in rest or "}" in rest:
        raise TemplateError("output_key: a brace that is not part of a {placeholder}", "output_key")
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
        raise TemplateError(f"the template does not make a valid job: {exc}", exc.field) from None


def template_ref(name: str, revision: int) -> str:
    return f"{name}@{revision}"


def parse_template_ref(ref: str) -> tuple[str, int | None]:
    """``name`` or ``name@revision`` → (name, revision or None for the latest)."""
    name, at, rev = ref.partition("@")
    if not re.fullmatch(NAME_PATTERN, name) or len(name) > MAX_NAME_CHARS:
        raise TemplateError(f"template: {ref[:100]!r} is not a template name (or name@revision)", "template")
    if not at:
        return name, None
    revision = parse_revision(rev)
    if revision is None:
        raise TemplateError(
            f"template: the revision in {ref[:100]!r} must be a number from 1 to {MAX_REVISION}", "template"
        )
    return name, revision


def parse_revision(text: str) -> int | None:
    """A revision written in decimal (1 … MAX_REVISION), or None. Checked by length before ``int``:
    a number of thousands of digits is refused without being converted."""
    if not text.isascii() or not text.isdigit() or len(text) > len(str(MAX_REVISION)):
        return None
    value = int(text)
    return value if 1 <= value <= MAX_REVISION else None
