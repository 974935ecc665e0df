"""compose.yaml's topology run as local processes: nginx with the very file deploy/nginx.conf (only its
upstream addresses and listen port substituted) in front of the API and the S3 server, NATS over TLS with
one identity per service, PostgreSQL, and the services started with the environment compose gives each of
them (its host names made loopback addresses, its .env secrets drawn at random).

It checks what compose promises on its one published port: /media/in/ and /media/out/ serve objects
(ranges, the media types nginx.conf maps), presigned links work through it, the API and GraphQL (its
WebSocket too) are proxied, and nothing else is published: not /metrics, not the API's probes, not a
listing, a write or an unsigned request to a bucket.

What it cannot prove about MinIO: the S3 server here is moto's. Given minio-init's anonymous-read policies
(deploy/minio-policies) it answers anonymous GETs, but also anonymous listings and writes (it does not
evaluate the statements), refuses anonymous HEADs, and checks no signature. So MinIO's own enforcement of
GetObject-only and of signatures is not tested here; what is shown is that nginx alone refuses what that
policy would (listings, writes, sub-resources, unsigned bucket paths), so compose does not rest on the
policy for those.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import pytest
import yaml
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from websockets.asyncio.client import connect as ws_connect

from mpr_common.keys import InvalidKeyError, validate_key
from mpr_common.storage import ensure_buckets
from mpr_devstack.servers import MotoServer, NatsServer, Proc, free_port, wait_until
from mpr_devstack.stack import Stack
from tests.system.conftest import wait_for, wait_job
from tests.system.test_bus_tls import make_certs

pytestmark = pytest.mark.system

ROOT = Path(__file__).resolve().parents[2]
NGINX_CONF = ROOT / "deploy" / "nginx.conf"
COMPOSE = ROOT / "compose.yaml"
SERVICES = ("catalog", "scanner", "transcoder", "api")
BUCKET_IN, BUCKET_OUT = "mpr-media-in", "mpr-media-out"
# The addresses compose's containers know each other by, and the port it publishes.
UPSTREAM_API, UPSTREAM_S3, LISTEN = "server api:8000;", "server minio:9000;", "listen 8080;"


def nginx_binary() -> str:
    found = shutil.which("nginx") or next(
        (p for p in ("/usr/sbin/nginx", "/usr/local/sbin/nginx") if os.access(p, os.X_OK)), None
    )
    if not found:
        pytest.fail("nginx is not installed: scripts/bootstrap.sh installs Debian's (apt-get install nginx)")
    return found


def localized_conf(text: str, api_port: int, s3_port: int, port: int) -> str:
    """deploy/nginx.conf with compose's host names replaced by this machine's loopback ports: nothing else."""
    for old, new in (
        (UPSTREAM_API, f"server 127.0.0.1:{api_port};"),
        (UPSTREAM_S3, f"server 127.0.0.1:{s3_port};"),
        (LISTEN, f"listen 127.0.0.1:{port};"),
    ):
        assert text.count(old) == 1, old
        text = text.replace(old, new)
    return text


def answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


@dataclass
class Nginx:
    """nginx as an unprivileged process (nobody, when the tests run as root) with a prefix of its own;
    its main file is the nginx image's http block around the deployed file (compose mounts it as
    conf.d/default.conf)."""

    conf: str
    port: int
    prefix: Path
    proc: Proc | None = None

    def start(self) -> Nginx:
        self.prefix.chmod(0o755)
        (self.prefix / "default.conf").write_text(self.conf)
        p = self.prefix
        mime = Path("/etc/nginx/mime.types")  # the image's nginx.conf includes its types
        lines = [
            "worker_processes 1;",
            "daemon off;",
            f"pid {p}/nginx.pid;",
            f"error_log {p}/error.log info;",
            "events { worker_connections 256; }",
            "http {",
            *([f"    include {mime};"] if mime.exists() else []),
            "    default_type application/octet-stream;",
            f"    access_log {p}/access.log;",
            "    sendfile on;",
            "    keepalive_timeout 65;",
            *(f"    {t}_temp_path {p}/{t};" for t in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")),
            f"    include {p}/default.conf;",
            "}",
        ]
        (p / "nginx.conf").write_text("\n".join(lines) + "\n")
        args = [nginx_binary(), "-p", f"{p}/", "-c", f"{p}/nginx.conf", "-e", f"{p}/error.log"]
        drop: dict[str, Any] = {}
        if os.geteuid() == 0:
            for f in p.iterdir():
                os.chown(f, 65534, 65534)
            os.chown(p, 65534, 65534)
            drop = {"user": 65534, "group": 65534, "extra_groups": []}
        test = subprocess.run([*args, "-t"], capture_output=True, text=True, **drop)
        assert test.returncode == 0, test.stderr
        popen = subprocess.Popen(
            args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, process_group=0, **drop
        )
        self.proc = Proc("nginx", popen, p / "error.log")
        wait_until(self._up, 30, "nginx", popen)
        return self

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _up(self) -> bool:
        return answers(f"{self.url}/nginx-health")

    def stop(self) -> None:
        if self.proc and self.proc.alive():
            self.proc.popen.send_signal(signal.SIGQUIT)  # graceful: workers finish their requests
            try:
                self.proc.popen.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.popen.kill()
                self.proc.popen.wait()


@dataclass
class Topology:
    stack: Stack
    nginx: Nginx
    token: str
    env: dict[str, dict[str, str]]  # what each service was started with, from compose.yaml
    s3: Any  # an S3 client of the test's own, straight to the S3 server

    def client(self, **kw: Any) -> httpx.Client:
        return httpx.Client(base_url=self.nginx.url, timeout=60, **kw)

    def api(self) -> httpx.Client:
        return self.client(headers={"Authorization": f"Bearer {self.token}"})


def compose_env(
    name: str, compose: dict, stack: Stack, ca: Path, public_url: str, database: str, secrets: dict[str, str]
) -> dict[str, str]:
    """The environment compose gives service ``name``, with its host names, files and ``.env`` values
    made this machine's: every variable compose sets is set, to what it means here."""
    endpoints = {
        "http://minio:9000": stack.moto.url if stack.moto else "",
        "tls://nats:4222": f"tls://127.0.0.1:{stack.nats.port}" if isinstance(stack.nats, NatsServer) else "",
        "/etc/nats-tls/ca.crt": str(ca),
        "http://localhost:8080": public_url,
        "@postgres:5432/mpr": f"@{database}",
    }
    out: dict[str, str] = {}
    for var, raw in compose["services"][name]["environment"].items():
        value = str(raw)
        if var == "METRICS_PORT":  # a port of its own per process here (the stack's)
            continue
        for ref in re.findall(r"\$\{([A-Z0-9_]+)[:?-][^}]*\}", value):
            default = re.search(rf"\$\{{{ref}:-([^}}]*)\}}", value)
            value = re.sub(
                rf"\$\{{{ref}[^}}]*\}}",
                default.group(1) if default else secrets.setdefault(ref, uuid.uuid4().hex),
                value,
            )
        for there, here in endpoints.items():
            value = value.replace(there, here)
        out[var] = value
    if "NATS_USER" in out:  # the identity compose names, with the password nats-server was given
        assert stack.nats and stack.nats.passwords
        out["NATS_PASSWORD"] = stack.nats.passwords[out["NATS_USER"]]
    return out


@pytest.fixture(scope="module")
def topology(tmp_path_factory, postgres) -> Iterator[Topology]:
    compose = yaml.safe_load(COMPOSE.read_text())
    work = tmp_path_factory.mktemp("compose")
    ca, cert, key = make_certs(work)
    stack = Stack(work, transcoders=0, extra_env={"NATS_CA_FILE": str(ca)})
    prefix = Path(tempfile.mkdtemp(prefix="mpr-nginx-"))  # nobody must reach it: not under pytest's 0700
    nginx: Nginx | None = None
    try:
        (work / "logs").mkdir(exist_ok=True)
        stack.api_port = free_port()
        stack.nats = NatsServer(
            work / "jetstream",
            log_path=work / "logs" / "nats-server.log",
            passwords=stack.nats_passwords(),
            tls=(cert, key),
        ).start()
        stack.moto = MotoServer(log_path=work / "logs" / "s3.log").start()
        ensure_buckets(stack.s3_client(), BUCKET_IN, BUCKET_OUT)
        for bucket, side in ((BUCKET_IN, "in"), (BUCKET_OUT, "out")):  # minio-init's anonymous read
            policy = (ROOT / "deploy" / "minio-policies" / f"anonymous-read-{side}.json").read_text()
            stack.s3_client().put_bucket_policy(Bucket=bucket, Policy=policy)
        stack.setup_jetstream()  # compose's nats-setup, as the setup identity
        port = free_port()
        db = f"compose{uuid.uuid4().hex[:8]}"
        postgres.create_db(db)  # PostgreSQL as compose runs it (trust authentication: any password)
        database = f"127.0.0.1:{postgres.port}/{db}"
        secrets: dict[str, str] = {}
        env = {
            name: compose_env(name, compose, stack, ca, f"http://127.0.0.1:{port}", database, secrets)
            for name in SERVICES
        }
        for name in SERVICES:
            stack.start_service(name, env=env[name])
        for name in SERVICES:
            ops = f"http://127.0.0.1:{stack.metrics_ports[name]}/health/ready"
            wait_until(lambda u=ops: answers(u), 120, name, stack.services[name].popen)
        wait_until(lambda: answers(f"{stack.api_url}/health/ready"), 120, "api")
        nginx = Nginx(
            localized_conf(NGINX_CONF.read_text(), stack.api_port, stack.moto.port, port), port, prefix
        )
        nginx.start()
        yield Topology(stack, nginx, secrets["MPR_API_TOKENS"], env, stack.s3_client())
    finally:
        if nginx:
            nginx.stop()
        stack.stop()
        shutil.rmtree(prefix, ignore_errors=True)


# --- the file nginx runs -----------------------------------------------------------------------------
def test_nginx_runs_the_deployed_file_with_only_its_endpoints_substituted(topology):
    loaded = (topology.nginx.prefix / "default.conf").read_text()
    s = topology.stack
    restored = (
        loaded.replace(f"server 127.0.0.1:{s.api_port};", UPSTREAM_API)
        .replace(f"server 127.0.0.1:{s.moto.port};", UPSTREAM_S3)
        .replace(f"listen 127.0.0.1:{topology.nginx.port};", LISTEN)
    )
    assert restored.encode() == NGINX_CONF.read_bytes()
    assert topology.nginx.proc and topology.nginx.proc.alive()


def test_the_services_run_with_composes_environment_and_identities(topology):
    compose = yaml.safe_load(COMPOSE.read_text())
    for name in SERVICES:
        declared = set(compose["services"][name]["environment"]) - {"METRICS_PORT"}
        assert declared <= topology.env[name].keys(), name
        assert topology.env[name]["NATS_USER"] == compose["services"][name]["environment"]["NATS_USER"]
        assert topology.env[name]["NATS_URL"].startswith("tls://")
        assert topology.stack.services[name].alive(), name
    assert topology.env["api"]["S3_PUBLIC_ENDPOINT_URL"] == topology.nginx.url
    assert topology.env["catalog"]["DATABASE_URL"].startswith("postgresql+asyncpg://mpr:")


# --- what nginx publishes ------------------------------------------------------------------------------
MEDIA = {  # key in the out bucket -> the type nginx.conf's map gives it (stored as octet-stream)
    "pkg/master.m3u8": "application/vnd.apple.mpegurl",
    "pkg/manifest.mpd": "application/dash+xml",
    "pkg/v/seg_001.m4s": "video/iso.segment",
    "pkg/v/seg_001.ts": "video/mp2t",
    "pkg/video.MP4": "video/mp4",
    "pkg/audio.m4a": "audio/mp4",
    "pkg/subs.vtt": "text/vtt",
    "pkg/thumb.jpg": "image/jpeg",
    "pkg/sprite.png": "image/png",
}


def test_media_paths_serve_objects_with_ranges_and_the_mapped_types(topology):
    s3 = topology.s3
    body = bytes(range(256)) * 64
    run = uuid.uuid4().hex[:6]
    for key in MEDIA:
        s3.put_object(
            Bucket=BUCKET_OUT, Key=f"{run}/{key}", Body=body, ContentType="application/octet-stream"
        )
    odd = f"{run}/in dir/a b+c%d (1)?#é.mp4"  # a key as people name files
    s3.put_object(Bucket=BUCKET_IN, Key=odd, Body=body, ContentType="binary/octet-stream")
    s3.put_object(Bucket=BUCKET_OUT, Key=f"{run}/report.json", Body=b"{}", ContentType="application/json")
    with topology.client() as c:
        for key, ctype in MEDIA.items():
            r = c.get(f"/media/out/{run}/{key}")
            assert r.status_code == 200 and r.content == body, key
            assert r.headers["content-type"] == ctype, key
            assert r.headers["x-content-type-options"] == "nosniff"
        r = c.get(f"/media/in/{quote(odd)}", headers={"Range": "bytes=100-199"})
        assert r.status_code == 206 and r.content == body[100:200], r.status_code
        assert r.headers["content-range"] == f"bytes 100-199/{len(body)}"
        assert r.headers["content-type"] == "video/mp4"
        r = c.get(f"/media/out/{run}/report.json")  # a type outside the map: the stored one
        assert r.status_code == 200 and r.headers["content-type"].startswith("application/json")
        assert c.get(f"/media/out/{run}/absent.mp4").status_code == 404
        assert c.get(f"/media/in/{run}/pkg/thumb.jpg").status_code == 404  # each path its own bucket


# Segments of any characters a key may hold (validate_key has the last word): spaces, %, +, ?, #, ;,
# non-ASCII letters and symbols.
segments = st.text(
    alphabet=st.characters(blacklist_categories=("Cs", "Cc", "Cf", "Zl", "Zp"), blacklist_characters="/\\"),
    min_size=1,
    max_size=24,
).filter(lambda s: s not in (".", "..") and not s.startswith("-"))
object_keys = st.lists(
    segments,
    min_size=1,
    max_size=3,
).map("/".join)


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(name=object_keys)
def test_every_key_mpr_accepts_is_served_as_stored(topology, name):
    """Whatever key validate_key lets in, /media/out/ serves that object (nginx decodes, normalises and
    re-encodes the path before it reaches S3)."""
    key = f"prop/{name}"
    try:
        validate_key(key)
    except InvalidKeyError:
        assume(False)
    body = key.encode()
    topology.s3.put_object(Bucket=BUCKET_OUT, Key=key, Body=body)
    r = httpx.get(f"{topology.nginx.url}/media/out/{quote(key)}", timeout=30)
    assert r.status_code == 200 and r.content == body, (key, r.status_code)


def raw_request(
    port: int, method: str, target: str, headers: dict[str, str] | None = None
) -> tuple[int, bytes]:
    """One request with its target sent as written (an HTTP client would normalise ``/api/../metrics``)."""
    lines = [
        f"{method} {target} HTTP/1.1",
        f"Host: 127.0.0.1:{port}",
        "Connection: close",
        "Content-Length: 0",
    ]
    lines += [f"{k}: {v}" for k, v in (headers or {}).items()]
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    return int(head.split(b" ", 2)[1]), body


def test_nothing_internal_is_published(topology):
    s3 = topology.s3
    port = topology.nginx.port
    run = uuid.uuid4().hex[:6]
    s3.put_object(Bucket=BUCKET_OUT, Key=f"{run}/keep.mp4", Body=b"x" * 100)
    token = {"Authorization": f"Bearer {topology.token}"}
    # The API's metrics are on its ops port, which nginx does not reach; its public port has none.
    ops = httpx.get(f"http://127.0.0.1:{topology.stack.metrics_ports['api']}/metrics", timeout=10)
    assert ops.status_code == 200 and "mpr_requests_total" in ops.text
    for path in (
        "/metrics",
        "/metrics/",
        "/metrics?format=prometheus",
        "/api/../metrics",
        "/api/%2e%2e/metrics",
        "/api/..%2fmetrics",
        "/console/../metrics",
        "//metrics",
        "/%6detrics",
        "/health/ready",
        "/health/live",
        "/minio/health/live",  # MinIO's own API, beside the buckets
        "/moto-api/",
        "/mpr-media-in",
        "/nats",
    ):
        for headers in ({}, token):
            status, body = raw_request(port, "GET", path, headers)
            assert status in (400, 404), (path, status)
            assert b"# HELP" not in body, path
    status, _ = raw_request(port, "GET", "/media/in")  # nginx adds the slash, and /media/in/ is not listed
    assert status == 301 and raw_request(port, "GET", "/media/in/")[0] == 404
    # A bucket is neither listed nor written through the media paths, nor asked for a sub-resource
    # (the S3 server behind would have: with a read policy, moto lists and takes anonymous writes).
    assert httpx.get(f"{topology.stack.moto.url}/{BUCKET_IN}/?list-type=2", timeout=10).status_code == 200
    for method, path, refused in (
        ("GET", "/media/in/", 404),
        ("GET", "/media/out/", 404),
        ("GET", "/media/in/?list-type=2", 404),
        ("GET", f"/media/out/{run}/keep.mp4?acl", 404),
        ("GET", f"/media/out/{run}/keep.mp4?tagging", 404),
        ("PUT", f"/media/in/{run}/planted.mp4", 403),
        ("DELETE", f"/media/out/{run}/keep.mp4", 403),
        ("POST", f"/media/in/{run}/planted.mp4", 403),
        # The bucket paths (presigned links) take signed requests only.
        ("GET", f"/{BUCKET_OUT}/{run}/keep.mp4", 403),
        ("GET", f"/{BUCKET_IN}/?list-type=2", 403),
        ("GET", f"/{BUCKET_IN}/", 403),
        ("PUT", f"/{BUCKET_IN}/{run}/planted.mp4", 403),
        ("DELETE", f"/{BUCKET_OUT}/{run}/keep.mp4", 403),
    ):
        assert raw_request(port, method, path)[0] == refused, (method, path)
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=BUCKET_IN, Prefix=run).get("Contents", [])]
    assert keys == []
    assert s3.head_object(Bucket=BUCKET_OUT, Key=f"{run}/keep.mp4")["ContentLength"] == 100
    assert httpx.get(f"{topology.nginx.url}/nginx-health", timeout=10).text == "ok\n"


# --- the API through nginx ------------------------------------------------------------------------------
def test_the_api_console_and_openapi_are_proxied(topology):
    with topology.client() as c:
        assert c.get("/api/jobs").status_code == 401  # proxied: the API's own refusal
        r = c.get("/")
        assert r.status_code in (302, 303, 307) and r.headers["location"].endswith("/console/")
        assert c.get("/console/sign-in").status_code == 200
        assert c.get("/schema/openapi.json").json()["info"]["title"] == "MPR API"
    with topology.api() as api:
        r = api.get("/api/jobs", params={"limit": 1})
        assert r.status_code == 200, r.text
        g = api.post("/graphql", json={"query": "{ jobs(limit: 1) { id } }"})
        assert g.status_code == 200 and "errors" not in g.json(), g.text


def test_a_job_submitted_through_nginx_is_followed_and_its_output_served_by_it(topology, media_dir):
    """Upload with a presigned link, a job, its events over GraphQL's WebSocket and the SSE stream, and
    its output: every step through nginx's port, every link the API hands out naming it."""
    run = uuid.uuid4().hex[:6]
    key = f"{run}/upload.mp4"
    data = (media_dir / "sample.mp4").read_bytes()
    job_id = f"nginx-{run}"
    query = "subscription($j: [String!]) { jobEvents(jobId: $j) { type jobId } }"
    ws_url = topology.nginx.url.replace("http://", "ws://") + "/graphql"
    auth = {"Authorization": f"Bearer {topology.token}"}

    with topology.api() as api:
        target = api.post("/api/uploads", json={"key": key, "size": len(data)})
        assert target.status_code == 201, target.text
        url = target.json()["url"]
        assert url.startswith(f"{topology.nginx.url}/{BUCKET_IN}/") and "X-Amz-Signature=" in url
        put = httpx.put(
            url, content=data, headers={"Content-Type": target.json()["content_type"]}, timeout=60
        )
        assert put.status_code == 200, put.text
        finish = {"key": key, "size": len(data)}
        if target.json().get("upload_id"):
            finish["upload_id"] = target.json()["upload_id"]
        done = api.post("/api/uploads/complete", json=finish)
        assert done.status_code in (200, 201), done.text

        async def watch() -> list[dict]:
            async with ws_connect(
                ws_url, subprotocols=["graphql-transport-ws"], additional_headers=auth
            ) as ws:
                await ws.send(json.dumps({"type": "connection_init"}))
                assert json.loads(await ws.recv())["type"] == "connection_ack"
                payload = {"query": query, "variables": {"j": [job_id]}}
                await ws.send(json.dumps({"id": "1", "type": "subscribe", "payload": payload}))
                await asyncio.sleep(0.5)  # the subscription is live once the API has read the document
                r = await asyncio.to_thread(
                    api.post, "/api/jobs", json={"kind": "thumbnail", "source_key": key, "job_id": job_id}
                )
                assert r.status_code == 202, r.text
                got: list[dict] = []
                async with asyncio.timeout(120):
                    while not got or got[-1]["type"] not in ("job.completed", "job.failed"):
                        message = json.loads(await ws.recv())
                        assert message["type"] == "next", message
                        got.append(message["payload"]["data"]["jobEvents"])
                return got

        with api.stream("GET", "/api/events", params={"job_id": job_id, "types": "job.completed"}) as sse:
            got = asyncio.run(watch())
            completed = next(ln for ln in sse.iter_lines() if ln.startswith("data:"))
        assert got[0]["type"] == "job.queued" and got[-1]["type"] == "job.completed", got
        assert json.loads(completed.removeprefix("data:"))["job_id"] == job_id
        answer = wait_job(api, job_id)
        assert answer["job"]["status"] == "completed", answer
        output = answer["output_url"]
        assert output.startswith(f"{topology.nginx.url}/"), output
    r = wait_for(
        lambda: (lambda r: r if r.status_code == 200 else None)(
            httpx.get(output, timeout=30, follow_redirects=True)
        ),
        timeout=30,
        what="the output through nginx",
    )
    assert r.headers["content-type"] == "image/jpeg" and r.content[:2] == b"\xff\xd8"
    assert str(r.url).startswith(topology.nginx.url)
