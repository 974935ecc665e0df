"""The generated tables of docs/architecture.md: every subject with its stream, producers and
consumers; every stream with its durable consumers; every KV bucket with who writes and reads it.
All are derived from :mod:`mpr_common.subjects` (names and their comments), :mod:`mpr_common.streams`
(what ``mpr-setup`` creates) and :mod:`mpr_common.identities` (who may publish, subscribe and pull),
so the map cannot drift from the code: a unit test compares the document with this output.

``python -m mpr_common.architecture --markdown`` prints the tables; ``--write docs/architecture.md``
replaces them between the document's markers."""

from __future__ import annotations

import argparse
import inspect
import re
import sys
from dataclasses import dataclass
from pathlib import Path

from . import subjects as s
from .catalog_requests import REQUEST_TYPES
from .events import PRIORITIES
from .identities import IDENTITIES, JS_API, subject_matches
from .settings import JobQueueSettings
from .streams import consumer_configs, stream_configs

START = "<!-- architecture tables: generated -->\n"
END = "<!-- end of architecture tables -->"
SERVER = "nats-server"  # publishes JetStream's advisories
OPERATOR = "setup"  # may publish anything (operators, mpr-setup): not a producer of any subject

# Constants of subjects.py that are not subjects of their own: aggregates (a stream's or a consumer's
# filter), prefixes of a family shown by its pattern, and one member of a family shown whole.
NOT_LISTED = {
    "OBJECTS_ALL",
    "JOBS_ALL",
    "ASSET_REGISTERED",
    "WEBHOOK_DELIVERIES",
    "MAX_DELIVERIES_ADVISORY",
}
# Families of subjects, by the pattern that names them all.
FAMILIES = {
    "ASSETS_REGISTERED_ALL": "one subject per object (`asset_subject`)",
    "MAX_DELIVERIES_ADVISORIES": "one per queue class's consumer",
}


@dataclass(frozen=True)
class Subject:
    name: str  # the constant in subjects.py, or how it is made
    subject: str
    note: str


def _comments() -> dict[str, str]:
    """What subjects.py says of each ``NAME = ...``: the comment lines just above it (not a section's
    heading), then its trailing comment."""
    found: dict[str, str] = {}
    above: list[str] = []
    for line in inspect.getsource(s).splitlines():
        if line.startswith("# ") and not line.startswith("# ---"):
            above.append(line[2:].strip())
            continue
        m = re.match(r"^([A-Z_]+) = [^#]*(?:  # (.+))?$", line)
        if m:
            found[m.group(1)] = " ".join([*above, m.group(2) or ""]).strip()
        above = []
    return found


def _is_subject(value: object) -> bool:
    return isinstance(value, str) and (value.startswith(f"{s.PREFIX}.") or value.startswith("$JS.EVENT"))


def listed_subjects() -> list[Subject]:
    notes = _comments()
    rows = []
    for name, value in vars(s).items():
        if name.isupper() and _is_subject(value) and name not in NOT_LISTED:
            rows.append(
                Subject(name, value, FAMILIES.get(name) or _request_note(value) or notes.get(name, ""))
            )
        if name == "JOB_REQUESTED":  # the queue classes' subjects follow their normal one
            rows += [_class_subject("requested_subject", p) for p in PRIORITIES if p != "normal"]
        if name == "JOB_CHILD":
            rows += [_class_subject("child_subject", p) for p in PRIORITIES if p != "normal"]
    rows.append(Subject("webhook_delivery_subject", s.webhook_delivery_subject(">", ">")[:-2], ""))
    return [r for r in rows if r.subject]


def _request_note(subject: str) -> str:
    request = REQUEST_TYPES.get(subject)
    return f"`{request.__name__}` → `{request.reply.__name__}` (catalog_requests)" if request else ""


def _class_subject(make: str, priority: str) -> Subject:
    return Subject(f'{make}("{priority}")', getattr(s, make)(priority), f"queue class {priority}")


def _sample(pattern: str) -> str:
    """A concrete subject that ``pattern`` matches (permissions are matched against it)."""
    return ".".join("x" if tok in ("*", ">") else tok for tok in pattern.split("."))


def _overlap(a: str, b: str) -> bool:
    """Whether subjects (or patterns) ``a`` and ``b`` have a subject in common."""
    return subject_matches(a, _sample(b)) or subject_matches(b, _sample(a))


def _stream_of(subject: str) -> str | None:
    for cfg in stream_configs():
        if any(_overlap(p, subject) for p in cfg.subjects or []):
            return cfg.name
    return None


def producers(subject: str) -> list[str]:
    if subject.startswith("$JS.EVENT"):
        return [SERVER]
    return [
        i.name
        for i in IDENTITIES.values()
        if i.name != OPERATOR and any(subject_matches(p, _sample(subject)) for p in i.publish)
    ]


def _durable_owner(stream: str, durable: str) -> str:
    fetch = f"{JS_API}.CONSUMER.MSG.NEXT.{stream}.{durable}"
    owners = [i.name for i in IDENTITIES.values() if i.name != OPERATOR and fetch in i.publish]
    return ", ".join(owners) or "?"


def _durables() -> list[tuple[str, str, list[str], str]]:
    """(stream, durable, filter subjects, the identity that pulls it)."""
    rows = []
    for stream, cfg in consumer_configs(JobQueueSettings()):
        filters = cfg.filter_subjects or [cfg.filter_subject or ">"]
        durable = cfg.durable_name or "?"
        rows.append((stream, durable, list(filters), _durable_owner(stream, durable)))
    return rows


def consumers(subject: str) -> list[str]:
    sample = _sample(subject)
    found = [
        f"{owner} (`{durable}`)"
        for _, durable, filters, owner in _durables()
        if any(subject_matches(f, sample) for f in filters)
    ]
    found += [
        f"{i.name} (subscribes)"
        for i in IDENTITIES.values()
        if i.name != OPERATOR and any(subject_matches(p, sample) for p in i.subscribe)
    ]
    stream = _stream_of(subject)
    if stream is not None:  # reading a stream message by message, without a consumer
        found += [f"{name} (reads by sequence)" for name in _readers_by_sequence(stream)]
    return found


def _readers_by_sequence(stream: str) -> list[str]:
    reads = (f"{JS_API}.STREAM.MSG.GET.{stream}", f"{JS_API}.DIRECT.GET.{stream}")
    return [
        i.name
        for i in IDENTITIES.values()
        if i.name != OPERATOR and any(p == r or p.startswith(f"{r}.") for p in i.publish for r in reads)
    ]


def _join(items: list[str]) -> str:
    return ", ".join(items) or "—"


def subjects_table() -> str:
    rows = [
        "| Subject | In code | Stream (else request/reply or plain) | Producers | Consumers | What |",
        "|---|---|---|---|---|---|",
    ]
    for sub in listed_subjects():
        stream = _stream_of(sub.subject)
        where = f"`{stream}`" if stream else ("request/reply" if _answered(sub.subject) else "plain")
        rows.append(
            f"| `{sub.subject}` | `{sub.name}` | {where} | {_join(producers(sub.subject))} "
            f"| {_join(consumers(sub.subject))} | {sub.note} |"
        )
    return "\n".join(rows) + "\n"


def _answered(subject: str) -> bool:
    return any(
        i.responses and any(subject_matches(p, subject) for p in i.subscribe) for i in IDENTITIES.values()
    )


def streams_table() -> str:
    rows = ["| Stream | Subjects | Kept | Durable consumers (pulled by) |", "|---|---|---|---|"]
    durables = _durables()
    for cfg in stream_configs():
        kept = _kept(cfg)
        mine = [f"`{d}` ({owner})" for stream, d, _, owner in durables if stream == cfg.name]
        subjects = "<br>".join(f"`{x}`" for x in cfg.subjects or [])
        rows.append(f"| `{cfg.name}` | {subjects} | {kept} | {_join(mine)} |")
    return "\n".join(rows) + "\n"


def _kept(cfg) -> str:
    parts = []
    if str(cfg.retention).endswith("WORK_QUEUE"):
        parts.append("until acked")
    if cfg.max_msgs_per_subject == 1:
        parts.append("latest per subject")
    parts.append(f"{cfg.max_age / 86400:.0f} days" if cfg.max_age else "no age limit")
    return ", ".join(parts)


def kv_table() -> str:
    notes = _comments()
    rows = ["| KV bucket | In code | Written by | Read by | What |", "|---|---|---|---|---|"]
    for name, bucket in vars(s).items():
        if not (name.endswith("_KV") and isinstance(bucket, str)):
            continue
        writers = [
            i.name for i in IDENTITIES.values() if i.name != OPERATOR and f"$KV.{bucket}.>" in i.publish
        ]
        read = f"{JS_API}.DIRECT.GET.KV_{bucket}.>"
        readers = [
            i.name
            for i in IDENTITIES.values()
            if i.name != OPERATOR and read in i.publish and i.name not in writers
        ]
        rows.append(
            f"| `{bucket}` | `{name}` | {_join(writers)} | {_join(readers)} | {notes.get(name, '')} |"
        )
    return "\n".join(rows) + "\n"


def render_markdown() -> str:
    return (
        "#### Subjects\n\n"
        + subjects_table()
        + "\n#### Streams\n\n"
        + streams_table()
        + "\n#### Key/value buckets\n\n"
        + kv_table()
    )


def replace_tables(text: str) -> str:
    if START not in text or END not in text:
        raise ValueError("the document lost its markers")
    head, rest = text.split(START, 1)
    return head + START + render_markdown() + END + rest.split(END, 1)[1]


def main(argv: list[str] | None = None) -> int:
    """Print the generated tables of docs/architecture.md, or write them into the document."""
    parser = argparse.ArgumentParser(prog="python -m mpr_common.architecture", description=main.__doc__)
    parser.add_argument("--markdown", action="store_true", help="print the tables")
    parser.add_argument("--write", metavar="DOC", type=Path, help="replace the tables between DOC's markers")
    args = parser.parse_args(argv)
    if args.write:
        args.write.write_text(replace_tables(args.write.read_text()))
    else:
        sys.stdout.write(render_markdown())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
