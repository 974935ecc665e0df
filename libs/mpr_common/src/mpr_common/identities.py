"""Who may do what on the bus: one NATS identity per service, one for outside publishers and one for
the setup owner, each with only the subjects it needs. The nats-server ``authorization`` block is
rendered from this table (``make dev`` writes it with generated passwords; compose and k8s read the
passwords from the environment), so the permissions are defined once."""

from __future__ import annotations

import argparse
import json
import secrets
import sys
from dataclasses import dataclass, field

from . import subjects as s
from .events import PRIORITIES

JS_API = "$JS.API"
INBOX_ROOT = "_INBOX"


def inbox_prefix(identity: str) -> str:
    """The reply inboxes of ``identity``'s connections (nats-py's ``inbox_prefix``): replies, acks and
    pulled messages addressed to one identity cannot be read by another, whose subscribe permission
    covers its own prefix only."""
    return f"{INBOX_ROOT}.{identity}"


def subject_matches(pattern: str, subject: str) -> bool:
    """Whether a NATS subject pattern (``*`` one token, ``>`` the rest) matches ``subject``."""
    p, t = pattern.split("."), subject.split(".")
    for i, tok in enumerate(p):
        if tok == ">":
            return len(t) > i
        if i >= len(t) or (tok != "*" and tok != t[i]):
            return False
    return len(p) == len(t)


def _pull(stream: str, durable: str) -> list[str]:
    """What pulling from one durable consumer takes: fetch, ack, read its info (no create/delete)."""
    return [
        f"{JS_API}.CONSUMER.MSG.NEXT.{stream}.{durable}",
        f"{JS_API}.CONSUMER.INFO.{stream}.{durable}",
        f"$JS.ACK.{stream}.{durable}.>",
    ]


def _kv(bucket: str, write: bool) -> list[str]:
    """Bind to a KV bucket and read it (and write it)."""
    stream = f"KV_{bucket}"
    reads = [
        f"{JS_API}.STREAM.INFO.{stream}",
        f"{JS_API}.DIRECT.GET.{stream}.>",
        f"{JS_API}.STREAM.MSG.GET.{stream}",
    ]
    return reads + ([f"$KV.{bucket}.>"] if write else [])


def _read_by_sequence(stream: str) -> list[str]:
    """Read a stream's head and its messages one by one (the leader's get, or a direct get)."""
    return [
        f"{JS_API}.STREAM.INFO.{stream}",
        f"{JS_API}.STREAM.MSG.GET.{stream}",
        f"{JS_API}.DIRECT.GET.{stream}",
    ]


# Queue classes other than normal (whose subjects and consumer have the unsuffixed names).
_OTHER_CLASSES = [p for p in PRIORITIES if p != "normal"]


def _job_state(write: bool) -> list[str]:
    return _kv(s.JOB_STATE_KV, write)


# Which reply inboxes an identity may subscribe to:
OWN = "own"  # its own prefix only (every MPR client connects with it)
UNCLAIMED = "unclaimed"  # nats-py's or nats.go's default one, ``_INBOX.<nuid>``: any but the identities' own
ALL = "all"  # everything (the setup owner)


@dataclass(frozen=True)
class Identity:
    name: str
    doc: str
    publish: list[str]
    # Subjects it is woken by, besides its replies (see ``inbox``).
    subscribe: list[str] = field(default_factory=list)
    # Answering requests: reply subjects of requests it received (max replies each; 0 = none).
    responses: int = 0
    inbox: str = OWN

    def subscribe_allow(self) -> list[str]:
        if self.inbox == ALL:
            return [">"]
        inboxes = f"{inbox_prefix(self.name)}.>" if self.inbox == OWN else f"{INBOX_ROOT}.>"
        return [inboxes, *self.subscribe]

    def subscribe_deny(self) -> list[str]:
        """A client that cannot choose its inbox prefix (MinIO) subscribes to ``_INBOX.>`` minus every
        identity's own prefix: the server drops whatever it is not allowed to see from a wildcard."""
        if self.inbox != UNCLAIMED:
            return []
        return [f"{inbox_prefix(name)}.>" for name in IDENTITIES if name != self.name]


IDENTITIES: dict[str, Identity] = {
    i.name: i
    for i in (
        Identity(
            "setup",
            "mpr-setup and operators: creates and updates streams, the KV bucket and consumers; the only "
            "identity that may manage them",
            publish=[">"],
            inbox=ALL,
        ),
        Identity(
            "api",
            "publishes job requests, cancels, callback results and dispatched jobs; asks scanners and "
            "the catalog; marks cancelled jobs in the job-state KV; reads encrypted packages' keys (wrapped) "
            "to serve them to playback tokens",
            publish=[
                s.JOB_REQUESTED,
                s.JOB_DISPATCHED,
                s.JOB_CANCEL,
                s.JOB_PROGRESS,
                s.JOB_COMPLETED,
                s.JOB_FAILED,
                s.SCAN_REQUEST,
                "mpr.catalog.>",
                *_job_state(write=True),
                *_kv(s.OUTPUT_OWNERS_KV, write=True),
                # queue classes: jobs of every class, moves (a copy on the new class), pause flags, and
                # the class consumers' state for GET /api/queues (their requests: read by sequence, below)
                *(s.requested_subject(p) for p in _OTHER_CLASSES),
                s.JOB_MOVED,
                *_kv(s.QUEUES_KV, write=True),
                *(f"{JS_API}.CONSUMER.INFO.{s.JOBS_STREAM}.{s.transcoders_durable(p)}" for p in PRIORITIES),
                # automation: templates, rules, their firings; rules pull registered assets
                *_kv(s.TEMPLATES_KV, write=True),
                *_kv(s.RULES_KV, write=True),
                *_kv(s.RULE_FIRINGS_KV, write=True),
                *_pull(s.ASSETS_STREAM, s.RULES_DURABLE),
                *_pull(s.JOBS_STREAM, s.RULES_JOBS_DURABLE),
                # retries and dead letters: read MPR_DLQ, mark a letter replayed, announce a retry
                s.JOB_RETRIED,
                f"{JS_API}.STREAM.INFO.{s.DLQ_STREAM}",
                f"{JS_API}.STREAM.MSG.GET.{s.DLQ_STREAM}",
                *_kv(s.DLQ_REPLAYS_KV, write=True),
                # the live event stream reads the jobs and assets streams by sequence: read-only, and no
                # consumer at all (a push consumer's deliver subject escapes the creator's permissions)
                *_read_by_sequence(s.JOBS_STREAM),
                *_read_by_sequence(s.ASSETS_STREAM),
                # webhooks: subscriptions (with their secrets: no other identity reads them); fan-out from
                # the jobs and assets streams into the tasks queue, which only the API may write (a task
                # is signed with a subscription's secret when it is sent); the delivery log; dead letters
                # encrypted packages: reads their content keys (wrapped), to serve them to playback tokens
                *_kv(s.CONTENT_KEYS_KV, write=False),
                *_kv(s.WEBHOOKS_KV, write=True),
                *_pull(s.JOBS_STREAM, s.WEBHOOKS_JOBS_DURABLE),
                *_pull(s.ASSETS_STREAM, s.WEBHOOKS_ASSETS_DURABLE),
                *_pull(s.WEBHOOK_TASKS_STREAM, s.WEBHOOKS_TASKS_DURABLE),
                s.WEBHOOK_TASKS,
                f"{s.WEBHOOK_DELIVERIES}.>",
                f"{JS_API}.DIRECT.GET.{s.WEBHOOKS_STREAM}",  # a page of a subscription's log
                f"{JS_API}.DIRECT.GET.{s.WEBHOOKS_STREAM}.>",  # one delivery's record
                s.DLQ_WEBHOOKS,
            ],
            # … and is woken by their messages
            subscribe=[s.JOBS_ALL, s.ASSETS_REGISTERED_ALL],
        ),
        Identity(
            "catalog",
            "pulls the jobs, objects and advisories streams; answers queries; publishes probes, dead "
            "letters and the failure of jobs whose worker died on every delivery; retires the requests "
            "of ended jobs from the jobs stream",
            publish=[
                *_pull(s.JOBS_STREAM, s.CATALOG_JOBS_DURABLE),
                *_pull(s.OBJECTS_STREAM, s.CATALOG_OBJECTS_DURABLE),
                *_pull(s.ADVISORIES_STREAM, s.CATALOG_ADVISORIES_DURABLE),
                f"{JS_API}.STREAM.INFO.{s.JOBS_STREAM}",
                f"{JS_API}.STREAM.INFO.{s.OBJECTS_STREAM}",
                f"{JS_API}.STREAM.MSG.GET.{s.JOBS_STREAM}",
                f"{JS_API}.STREAM.MSG.DELETE.{s.JOBS_STREAM}",  # retires the requests of ended jobs
                s.ASSETS_REGISTERED_ALL,
                s.DLQ_CATALOG,
                s.DLQ_JOBS,
                s.JOB_FAILED,
                *_job_state(write=True),
            ],
            subscribe=["mpr.catalog.>"],
            responses=1,
        ),
        Identity(
            "scanner",
            "lists the in bucket and publishes object events and scan status; translates MinIO "
            "notifications; answers scan requests in chunks",
            publish=[
                s.OBJECTS_ALL,
                s.DLQ_SCANNER,
                *_pull(s.MINIO_STREAM, s.SCANNER_MINIO_DURABLE),
            ],
            subscribe=[s.SCAN_REQUEST],
            responses=1_000_000,  # a scan's reply comes in chunks
        ),
        Identity(
            "transcoder",
            "pulls job requests; publishes progress, completion, failure and dead letters, a package's "
            "child jobs and their cancels, and when a package becomes playable; reads the catalog's "
            "probes; records terminal job states and package plans; makes and reads encrypted packages' "
            "keys (wrapped) and sources' scene changes",
            publish=[
                *_pull(s.JOBS_STREAM, s.TRANSCODERS_DURABLE),
                s.JOB_CHILD,
                s.JOB_CANCEL,
                s.JOB_PROGRESS,
                s.JOB_COMPLETED,
                s.JOB_PLAYABLE,
                s.JOB_FAILED,
                s.JOB_ATTEMPT,
                s.DLQ_JOBS,
                f"{JS_API}.DIRECT.GET.{s.ASSETS_STREAM}.>",
                *_job_state(write=True),
                *_kv(s.OUTPUT_OWNERS_KV, write=True),
                *_kv(s.PACKAGES_KV, write=True),
                # encrypted packages: creates each one's content key (wrapped), reads it to encrypt segments
                *_kv(s.CONTENT_KEYS_KV, write=True),
                # sources' scene changes: detected once per object version, read by every job on it
                *_kv(s.SCENES_KV, write=True),
                # queue classes: each class's consumer and children; the pause flags, read …
                *(x for p in _OTHER_CLASSES for x in _pull(s.JOBS_STREAM, s.transcoders_durable(p))),
                *(s.child_subject(p) for p in _OTHER_CLASSES),
                *_kv(s.QUEUES_KV, write=False),
            ],
            # … and followed as they are written
            subscribe=[s.JOB_CANCEL, f"$KV.{s.QUEUES_KV}.>"],
        ),
        Identity(
            "publisher",
            "other teams' services: may only publish job requests (and read their acks, connecting with "
            "inbox_prefix _INBOX.publisher)",
            publish=[s.JOB_REQUESTED, *(s.requested_subject(p) for p in _OTHER_CLASSES)],
        ),
        Identity(
            "minio",
            "MinIO's bucket notifications",
            publish=[s.MINIO_EVENTS],
            # MinIO's NATS target has no inbox prefix setting, and its JetStream mode (which waits for
            # the stream's ack before it forgets an event) replies to nats.go's default inbox.
            inbox=UNCLAIMED,
        ),
    )
}
SERVICES = ("api", "catalog", "scanner", "transcoder")


def permissions(ident: Identity) -> dict[str, object]:
    """nats-server's ``permissions`` of one identity."""
    subscribe: dict[str, list[str]] = {"allow": ident.subscribe_allow()}
    if ident.subscribe_deny():
        subscribe["deny"] = ident.subscribe_deny()
    perms: dict[str, object] = {"publish": {"allow": ident.publish}, "subscribe": subscribe}
    if ident.responses:
        perms["allow_responses"] = {"max": ident.responses, "expires": "15m"}
    return perms


def render_authorization(passwords: dict[str, str]) -> str:
    """The nats-server ``authorization`` block; a password value may be ``$ENV_VAR`` (nats-server
    substitutes environment variables), as compose and k8s do. Anonymous clients are refused."""
    users = []
    for ident in IDENTITIES.values():
        pw = passwords[ident.name]
        pw_text = pw if pw.startswith("$") else json.dumps(pw)
        perms = json.dumps(permissions(ident))
        users.append(f"    {{user: {ident.name}, password: {pw_text}, permissions: {perms}}}")
    return "authorization {\n  users: [\n" + "\n".join(users) + "\n  ]\n}\n"


def _code(subjects: list[str]) -> str:
    return "<br>".join(f"`{x}`" for x in subjects) or "—"


def render_markdown() -> str:
    """The table of docs/security.md: each identity's rights as the server enforces them."""
    rows = [
        "| Identity | Role | Inbox prefix | May publish | May subscribe | Refused subscriptions | Answers requests |",
        "|---|---|---|---|---|---|---|",
    ]
    for ident in IDENTITIES.values():
        inbox = {
            OWN: f"`{inbox_prefix(ident.name)}`",
            UNCLAIMED: "nats.go's default `_INBOX` (cannot be set)",
            ALL: f"`{inbox_prefix(ident.name)}` (may read any)",
        }[ident.inbox]
        answers = f"yes: up to {ident.responses:,} replies each, for 15 min" if ident.responses else "no"
        rows.append(
            f"| `{ident.name}` | {ident.doc} | {inbox} | {_code(ident.publish)} | {_code(ident.subscribe_allow())} "
            f"| {_code(ident.subscribe_deny())} | {answers} |"
        )
    return "\n".join(rows) + "\n"


def generate_passwords() -> dict[str, str]:
    return {name: secrets.token_urlsafe(24) for name in IDENTITIES}


def env_password_name(identity: str) -> str:
    return f"NATS_{identity.upper()}_PASSWORD"


def main(argv: list[str] | None = None) -> int:
    """Print the authorization block with ``$NATS_<IDENTITY>_PASSWORD`` references (compose, k8s), or
    with ``--markdown`` the identities table of docs/security.md."""
    parser = argparse.ArgumentParser(prog="python -m mpr_common.identities", description=main.__doc__)
    parser.add_argument("--markdown", action="store_true", help="the table of docs/security.md")
    args = parser.parse_args(argv)
    if args.markdown:
        sys.stdout.write(render_markdown())
    else:
        sys.stdout.write(render_authorization({n: "$" + env_password_name(n) for n in IDENTITIES}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
