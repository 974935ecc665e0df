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

JS_API = "$JS.API"


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


def _job_state(write: bool) -> list[str]:
    return _kv(s.JOB_STATE_KV, write)


@dataclass(frozen=True)
class Identity:
    name: str
    doc: str
    publish: list[str]
    subscribe: list[str] = field(default_factory=lambda: ["_INBOX.>"])  # replies and acks
    # Answering requests: reply subjects of requests it received (max replies each; 0 = none).
    responses: int = 0


IDENTITIES: dict[str, Identity] = {
    i.name: i
    for i in (
        Identity(
            "setup",
            "mpr-setup and operators: creates and updates streams, the KV bucket and consumers; the only "
            "identity that may manage them",
            publish=[">"],
            subscribe=[">"],
        ),
        Identity(
            "api",
            "publishes job requests, cancels, callback results and dispatched jobs; asks scanners and "
            "the catalog; marks cancelled jobs in the job-state KV",
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
            ],
        ),
        Identity(
            "catalog",
            "pulls the jobs, objects and advisories streams; answers queries; publishes probes, dead "
            "letters and the failure of jobs whose worker died on every delivery",
            publish=[
                *_pull(s.JOBS_STREAM, s.CATALOG_JOBS_DURABLE),
                *_pull(s.OBJECTS_STREAM, s.CATALOG_OBJECTS_DURABLE),
                *_pull(s.ADVISORIES_STREAM, s.CATALOG_ADVISORIES_DURABLE),
                f"{JS_API}.STREAM.INFO.{s.JOBS_STREAM}",
                f"{JS_API}.STREAM.INFO.{s.OBJECTS_STREAM}",
                f"{JS_API}.STREAM.MSG.GET.{s.JOBS_STREAM}",
                s.ASSETS_REGISTERED_ALL,
                s.DLQ_CATALOG,
                s.DLQ_JOBS,
                s.JOB_FAILED,
                *_job_state(write=True),
            ],
            subscribe=["_INBOX.>", "mpr.catalog.>"],
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
            subscribe=["_INBOX.>", s.SCAN_REQUEST],
            responses=1_000_000,  # a scan's reply comes in chunks
        ),
        Identity(
            "transcoder",
            "pulls job requests; publishes progress, completion, failure and dead letters, and a "
            "package's child jobs and their cancels; reads the catalog's probes; records terminal job "
            "states and package plans",
            publish=[
                *_pull(s.JOBS_STREAM, s.TRANSCODERS_DURABLE),
                s.JOB_CHILD,
                s.JOB_CANCEL,
                s.JOB_PROGRESS,
                s.JOB_COMPLETED,
                s.JOB_FAILED,
                s.DLQ_JOBS,
                f"{JS_API}.DIRECT.GET.{s.ASSETS_STREAM}.>",
                *_job_state(write=True),
                *_kv(s.OUTPUT_OWNERS_KV, write=True),
                *_kv(s.PACKAGES_KV, write=True),
            ],
            subscribe=["_INBOX.>", s.JOB_CANCEL],
        ),
        Identity(
            "publisher",
            "other teams' services: may only publish job requests (and read their acks)",
            publish=[s.JOB_REQUESTED],
        ),
        Identity(
            "minio",
            "MinIO's bucket notifications",
            publish=[s.MINIO_EVENTS],
        ),
    )
}
SERVICES = ("api", "catalog", "scanner", "transcoder")


def render_authorization(passwords: dict[str, str]) -> str:
    """The nats-server ``authorization`` block; a password value may be ``$ENV_VAR`` (nats-server
    substitutes environment variables), as compose and k8s do. Anonymous clients are refused."""
    users = []
    for ident in IDENTITIES.values():
        perms: dict[str, object] = {
            "publish": {"allow": ident.publish},
            "subscribe": {"allow": ident.subscribe},
        }
        if ident.responses:
            perms["allow_responses"] = {"max": ident.responses, "expires": "15m"}
        pw = passwords[ident.name]
        pw_text = pw if pw.startswith("$") else json.dumps(pw)
        users.append(f"    {{user: {ident.name}, password: {pw_text}, permissions: {json.dumps(perms)}}}")
    return "authorization {\n  users: [\n" + "\n".join(users) + "\n  ]\n}\n"


def generate_passwords() -> dict[str, str]:
    return {name: secrets.token_urlsafe(24) for name in IDENTITIES}


def env_password_name(identity: str) -> str:
    return f"NATS_{identity.upper()}_PASSWORD"


def main(argv: list[str] | None = None) -> int:
    """Print the authorization block with ``$NATS_<IDENTITY>_PASSWORD`` references (compose, k8s)."""
    argparse.ArgumentParser(prog="python -m mpr_common.identities", description=main.__doc__).parse_args(argv)
    sys.stdout.write(render_authorization({n: "$" + env_password_name(n) for n in IDENTITIES}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
