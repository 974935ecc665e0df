"""No eavesdropping on the bus: every identity reads only its own replies (its inbox prefix), the
identities table in docs/security.md is what a real nats-server enforces, and webhook secrets are not
stored in clear in their KV bucket."""

from __future__ import annotations

import asyncio
import base64
import re
import secrets
import uuid
from collections.abc import Awaitable, Callable

import httpx
import nats
import pytest
from nats.aio.client import Client as NatsClient

from mpr_common import subjects as s
from mpr_common.identities import IDENTITIES, INBOX_ROOT, OWN, inbox_prefix
from mpr_devstack.servers import NatsServer
from mpr_devstack.stack import DEV_API_TOKEN
from tests.system.conftest import wait_job

pytestmark = pytest.mark.system

DEADLINE = 30.0  # seconds for the server's answers on a loaded machine
VIOLATION = re.compile(r'permissions violation for (publish|subscription) to "([^"]+)"', re.IGNORECASE)


class Client:
    """A connection that records the server's permission violations as (operation, subject)."""

    def __init__(self) -> None:
        self.violations: list[tuple[str, str]] = []
        self.nc: NatsClient | None = None
        self._reported = asyncio.Event()

    async def connect(self, url: str, prefix: str | None) -> Client:
        async def on_error(exc: Exception) -> None:
            m = VIOLATION.search(str(exc))
            if m:
                self.violations.append(("publish" if m[1].lower() == "publish" else "subscribe", m[2]))
                self._reported.set()

        opts = {"inbox_prefix": prefix} if prefix else {}
        self.nc = await nats.connect(url, error_cb=on_error, max_reconnect_attempts=0, **opts)
        return self

    async def refused(self, expected: set[tuple[str, str]]) -> set[tuple[str, str]]:
        """Wait (up to DEADLINE) until each of ``expected`` has been refused; every violation seen.
        (nats-py reports the server's error in lower case: subjects are compared so.)"""
        assert self.nc is not None
        expected = {(op, x.lower()) for op, x in expected}
        await self.nc.flush()  # the server answers in order: violations come before the PONG
        try:
            async with asyncio.timeout(DEADLINE):
                while not expected <= set(self.violations):
                    self._reported.clear()
                    await self._reported.wait()
        except TimeoutError:
            pass  # the caller's assertion names what is missing
        return set(self.violations)

    async def close(self) -> None:
        if self.nc is not None:
            await self.nc.close()


async def _as(url: str, identity: str, prefix: str | None = "own") -> Client:
    return await Client().connect(url, inbox_prefix(identity) if prefix == "own" else prefix)


def _matches(pattern: str, subject: str) -> bool:
    p, t = pattern.split("."), subject.split(".")
    for i, tok in enumerate(p):
        if tok == ">":
            return len(t) > i
        if i >= len(t) or (tok != "*" and tok != t[i]):
            return False
    return len(p) == len(t)


def _concrete(pattern: str) -> str:
    """A subject the pattern matches."""
    return ".".join("x" if tok in ("*", ">") else tok for tok in pattern.split("."))


def _allowed(patterns: list[str], subject: str) -> bool:
    return any(_matches(p, subject) for p in patterns)


# --- the table's claims on a real nats-server ------------------------------------------------------
@pytest.fixture(scope="module")
def authorized_server(tmp_path_factory):
    """A nats-server with the rendered authorization only (no MPR streams: nothing is stored)."""
    workdir = tmp_path_factory.mktemp("inboxes")
    passwords = {name: secrets.token_urlsafe(16) for name in IDENTITIES}
    server = NatsServer(workdir / "js", passwords=passwords, log_path=workdir / "nats.log").start()
    yield server
    server.stop()


@pytest.mark.parametrize("identity", [n for n in IDENTITIES if n != "setup"])
def test_each_identity_has_exactly_the_rights_of_the_table(authorized_server, identity):
    ident = IDENTITIES[identity]
    others = [i for i in IDENTITIES.values() if i.name not in (identity, "setup")]
    allow, deny = ident.subscribe_allow(), ident.subscribe_deny()
    refused_subs = {f"{inbox_prefix(o.name)}.>" for o in others} | {">"}
    if ident.inbox == OWN:
        refused_subs |= {f"{INBOX_ROOT}.>", f"{INBOX_ROOT}.*"}
    refused_subs |= {x for o in others for x in o.subscribe if not _allowed(allow, _concrete(x))}
    own_pubs = [_concrete(p) for p in ident.publish]
    refused_pubs = {
        _concrete(p) for o in others for p in o.publish if not _allowed(ident.publish, _concrete(p))
    }
    refused_pubs |= {f"{inbox_prefix(o.name)}.forged" for o in others}  # forging another's reply
    assert refused_subs and refused_pubs

    async def run() -> None:
        me = await _as(authorized_server.url_as(identity), identity)
        admin = await _as(authorized_server.url, "setup")
        try:
            assert me.nc is not None and admin.nc is not None
            for subject in allow:
                await me.nc.subscribe(subject)
            for subject in own_pubs:
                await me.nc.publish(subject, b"{}")
            assert await me.refused(set()) == set(), "allowed by the table, refused by the server"

            # A request answered by another identity reaches this one's own inbox.
            probe = next(x for x in own_pubs if not x.startswith("$"))  # not one JetStream answers

            async def pong(msg) -> None:
                if msg.reply:  # not the plain publishes above, if they are still arriving
                    await msg.respond(b"pong")

            sub = await admin.nc.subscribe(probe, cb=pong)
            await admin.nc.flush()
            reply = await me.nc.request(probe, b"ping", timeout=DEADLINE)
            assert reply.data == b"pong" and reply.subject.startswith(
                (inbox_prefix(identity) + ".") if ident.inbox == OWN else INBOX_ROOT + "."
            )
            await sub.unsubscribe()

            for subject in refused_subs:
                await me.nc.subscribe(subject)
            for subject in refused_pubs:
                await me.nc.publish(subject, b"{}")
            expected = {("subscribe", x) for x in refused_subs if not (deny and x == f"{INBOX_ROOT}.>")}
            expected |= {("publish", x) for x in refused_pubs}
            seen = await me.refused(expected)
            assert {(op, x.lower()) for op, x in expected} <= seen, sorted(expected - seen)
        finally:
            await me.close()
            await admin.close()

    asyncio.run(run())


@pytest.mark.parametrize("identity", [n for n, i in IDENTITIES.items() if i.inbox == OWN and n != "setup"])
def test_a_client_without_its_inbox_prefix_gets_no_replies(authorized_server, identity):
    """The prefix is not a convention: nats-py's default inbox is refused to every MPR identity."""

    async def run() -> None:
        me = await _as(authorized_server.url_as(identity), identity, prefix=None)
        try:
            assert me.nc is not None
            with pytest.raises(Exception):  # noqa: B017 - no reply can reach it: a timeout
                await me.nc.request(_concrete(IDENTITIES[identity].publish[0]), b"", timeout=1)
            seen = await me.refused(set())  # its reply subscription was sent before the request
            assert any(op == "subscribe" and x.startswith(INBOX_ROOT.lower() + ".") for op, x in seen), seen
        finally:
            await me.close()

    asyncio.run(run())


# --- the running system: nobody else reads its replies -------------------------------------------
def test_outside_identities_cannot_read_the_services_replies(stack, s3, media_dir):
    """While the API, the catalog, the scanner and the transcoders exchange requests, acks, pulls and KV
    reads, ``publisher`` and ``minio`` subscribed to every inbox they can name receive none of it (and
    the setup owner, subscribed to everything, shows that there was plenty to receive)."""
    key = f"inboxes-{uuid.uuid4().hex[:6]}/a.mp4"
    s3.upload_file(str(media_dir / "sample.mp4"), "mpr-media-in", key)
    identities = [n for n in IDENTITIES if n not in ("setup", "minio")]
    received: dict[str, list[str]] = {"publisher": [], "minio": [], "setup": []}

    async def run() -> None:
        def keep(name: str) -> Callable[[object], Awaitable[None]]:
            async def cb(msg) -> None:
                received[name].append(msg.subject)

            return cb

        publisher = await _as(stack.nats.url_as("publisher"), "publisher")
        minio = await Client().connect(stack.nats.url_as("minio"), None)  # as MinIO: nats.go's inbox
        setup = await _as(stack.nats.url, "setup")
        try:
            assert publisher.nc and minio.nc and setup.nc
            for x in [f"{INBOX_ROOT}.>", *(f"{inbox_prefix(n)}.>" for n in identities if n != "publisher")]:
                await publisher.nc.subscribe(x, cb=keep("publisher"))
            for x in [f"{INBOX_ROOT}.>", *(f"{inbox_prefix(n)}.>" for n in identities)]:
                await minio.nc.subscribe(x, cb=keep("minio"))
            await setup.nc.subscribe(f"{INBOX_ROOT}.>", cb=keep("setup"))
            await setup.nc.flush()

            async with httpx.AsyncClient(
                base_url=stack.api_url, headers={"Authorization": f"Bearer {DEV_API_TOKEN}"}, timeout=60
            ) as api:
                hook = await api.post(
                    "/api/webhooks", json={"url": "http://127.0.0.1:9/hook", "types": ["job.completed"]}
                )
                assert hook.status_code == 201, hook.text
                job = await api.post("/api/jobs", json={"kind": "thumbnail", "source_key": key})
                assert job.status_code in (200, 201, 202), job.text
                job_id = job.json()["job"]["id"]
                with httpx.Client(base_url=stack.api_url, headers=api.headers, timeout=60) as sync_api:
                    await asyncio.to_thread(wait_job, sync_api, job_id)
                assert (await api.get("/api/jobs")).status_code == 200  # the catalog answers
                assert (await api.get("/api/webhooks")).status_code == 200  # KV reads
                scan = await api.post("/api/assets/scan", json={"prefix": key.split("/")[0]})
                assert scan.status_code == 200, scan.text  # the scanner's chunks
                await api.delete(f"/api/webhooks/{hook.json()['webhook']['id']}")

            refused_pub = await publisher.refused({("subscribe", f"{INBOX_ROOT}.>")})
            refused_minio = await minio.refused({("subscribe", f"{inbox_prefix('api')}.>")})
        finally:
            for c in (publisher, minio, setup):
                await c.close()
        assert {x for op, x in refused_pub if op == "subscribe"} >= {
            f"{INBOX_ROOT}.>".lower(),
            *(f"{inbox_prefix(n)}.>".lower() for n in identities if n != "publisher"),
        }
        assert {x for op, x in refused_minio if op == "subscribe"} >= {
            f"{inbox_prefix(n)}.>".lower() for n in identities
        }
        seen_by_setup = {subj.split(".")[1] for subj in received["setup"]}
        assert {"api", "catalog", "transcoder", "scanner"} <= seen_by_setup, seen_by_setup
        assert received["publisher"] == []
        claimed = tuple(f"{inbox_prefix(n)}." for n in IDENTITIES)
        assert [x for x in received["minio"] if x.startswith(claimed)] == []

    asyncio.run(run())


def test_a_webhook_secret_is_not_stored_in_clear(stack, api):
    created = api.post("/api/webhooks", json={"url": "http://127.0.0.1:9/hook", "types": ["job.completed"]})
    assert created.status_code == 201, created.text
    sub_id, secret = created.json()["webhook"]["id"], created.json()["secret"]
    rotated = api.post(f"/api/webhooks/{sub_id}/rotate-secret")

    async def raw() -> bytes:
        nc = await nats.connect(stack.nats.url, inbox_prefix=inbox_prefix("setup"))
        try:
            kv = await nc.jetstream().key_value(s.WEBHOOKS_KV)
            return (await kv.get(sub_id)).value or b""
        finally:
            await nc.close()

    try:
        stored = asyncio.run(raw())
        assert stored and sub_id.encode() in stored
        clear = [secret] + ([rotated.json()["secret"]] if rotated.status_code in (200, 201) else [])
        for value in clear:
            key = value.removeprefix("whsec_")
            assert value.encode() not in stored and key.encode() not in stored
            assert base64.b64decode(key) not in stored
    finally:
        api.delete(f"/api/webhooks/{sub_id}")
