"""compose.yaml, Dockerfiles and k8s/ validated without a Docker engine or a cluster:
schemas (compose-spec, Kubernetes OpenAPI), hadolint, and the properties we promise."""

from __future__ import annotations

import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
import yaml

from mpr_common import subjects as s

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
SERVICES = ("scanner", "catalog", "api", "transcoder")
SECRETISH = re.compile(r"(SECRET|PASSWORD|TOKEN|DATABASE_URL|ACCESS_KEY)")


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(BIN / args[0]), *args[1:]], capture_output=True, text=True, cwd=ROOT)


# --- compose ---------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load((ROOT / "compose.yaml").read_text())


def test_compose_matches_the_compose_spec():
    r = run("check-jsonschema", "--builtin-schema", "vendor.compose-spec", "compose.yaml")
    assert r.returncode == 0, r.stdout + r.stderr


def test_compose_has_the_whole_system_with_healthchecks(compose):
    svcs = compose["services"]
    one_shots = {"minio-init", "nats-setup", "nats-certs"}
    assert {"nats", "postgres", "minio", "nginx", *one_shots, *SERVICES} <= svcs.keys()
    for name, svc in svcs.items():
        if name not in one_shots:
            assert "healthcheck" in svc, name
    for name in SERVICES:
        build = svcs[name]["build"]
        assert (ROOT / build["context"] / build["dockerfile"]).exists()
        env = svcs[name]["environment"]
        assert env["S3_BUCKET_IN"] == "mpr-media-in" and env["S3_BUCKET_OUT"] == "mpr-media-out"
        # NATS only over TLS, verified against the CA nats-certs made
        assert env["NATS_URL"] == "tls://nats:4222" and env["NATS_CA_FILE"] == "/etc/nats-tls/ca.crt"
        assert "nats-tls:/etc/nats-tls:ro" in svcs[name]["volumes"]
        # Streams and consumers have one owner; every service starts after it has run.
        assert svcs[name]["depends_on"]["nats-setup"] == {"condition": "service_completed_successfully"}
    assert svcs["catalog"]["environment"]["DATABASE_URL"].startswith("postgresql+asyncpg://")
    assert "--jetstream" in svcs["nats"]["command"]
    assert {"--tls", "--tlscert", "--tlskey"} <= set(svcs["nats"]["command"])


def test_compose_minio_notifies_jetstream_and_init_creates_buckets(compose):
    minio = compose["services"]["minio"]["environment"]
    assert minio["MINIO_NOTIFY_NATS_SUBJECT_PRIMARY"] == s.MINIO_EVENTS
    assert minio["MINIO_NOTIFY_NATS_JETSTREAM_PRIMARY"] == "on"
    script = "\n".join(compose["services"]["minio-init"]["command"])
    assert "local/mpr-media-in local/mpr-media-out" in script
    assert "anonymous set download" not in script  # that would allow anonymous listing
    assert "mc event add" in script and "--event put,delete" in script


def test_compose_is_secure_by_default(compose):
    """No default credential, only nginx published, anonymous reads without listing, and each service
    with S3 credentials of its own limited by a bucket policy."""
    import json

    text = (ROOT / "compose.yaml").read_text()
    assert "minioadmin" not in text and "mpr-dev-token" not in text
    assert not re.search(r"\$\{[A-Z0-9_]*(PASSWORD|SECRET|TOKENS|ROOT_USER)[A-Z0-9_]*:-", text), (
        "a default credential"
    )
    published = {name for name, svc in compose["services"].items() if svc.get("ports")}
    assert published == {"nginx"}
    policies = ROOT / "deploy" / "minio-policies"
    for bucket in ("in", "out"):
        anon = json.loads((policies / f"anonymous-read-{bucket}.json").read_text())
        assert [a for st in anon["Statement"] for a in st["Action"]] == ["s3:GetObject"]
    for name in SERVICES:
        env = compose["services"][name]["environment"]
        assert env["AWS_ACCESS_KEY_ID"] == f"mpr-{name}"
        statements = json.loads((policies / f"{name}.json").read_text())["Statement"]
        actions = {a for st in statements for a in st["Action"]}
        assert "s3:*" not in actions
        # Deletes only where a service cleans up after itself: a failed package's files in the out
        # bucket (transcoder), an upload's staging copy (api); never a source.
        deletes = {r for st in statements if "s3:DeleteObject" in st["Action"] for r in st["Resource"]}
        assert deletes == {
            "transcoder": {"arn:aws:s3:::mpr-media-out/*"},
            "api": {"arn:aws:s3:::mpr-media-in/.mpr-uploads/*"},
        }.get(name, set()), name
        puts = {
            r
            for st in statements
            if any(a.startswith("s3:Put") for a in st["Action"])
            for r in st["Resource"]
        }
        lists = {r for st in statements if "s3:ListBucket" in st["Action"] for r in st["Resource"]}
        # The scanner lists sources; a transcoder lists a package's source folder for its subtitle sidecars
        # (and without ListBucket S3 answers a missing source 403, not 404) and a package's outputs; the
        # API an asset's folder for the sidecars its view lists.
        assert lists == {
            "scanner": {"arn:aws:s3:::mpr-media-in"},
            "api": {"arn:aws:s3:::mpr-media-in"},
            "transcoder": {"arn:aws:s3:::mpr-media-in", "arn:aws:s3:::mpr-media-out"},
        }.get(name, set()), name
        if name == "api":  # presigns the console's uploads: into the in bucket only
            assert puts == {"arn:aws:s3:::mpr-media-in/*"}
        elif name != "transcoder":
            assert not puts, name  # only transcoders write outputs
    env_example = (ROOT / "deploy" / "compose.env.example").read_text()
    for var in re.findall(r"\$\{([A-Z0-9_]+):\?", text):
        assert f"{var}=" in env_example, var


def nginx_locations(conf: str) -> dict[str, str]:
    """``location`` blocks of an nginx file: "<modifier> <path>" -> the block's text (nested blocks
    such as ``if`` or ``limit_except`` included)."""
    found: dict[str, str] = {}
    for m in re.finditer(r"^\s*location\s+(?:([=~^]+)\s+)?(\S+)\s*\{", conf, re.M):
        depth, i = 1, m.end()
        while depth:
            depth += {"{": 1, "}": -1}.get(conf[i], 0)
            i += 1
        found[f"{m.group(1) or ''} {m.group(2)}".strip()] = conf[m.end() : i - 1]
    return found


def test_compose_nginx_serves_the_seed_media_paths():
    """(tests/system/test_compose_topology.py runs this file in nginx; here, what it must say.)"""
    conf = (ROOT / "deploy" / "nginx.conf").read_text()
    locations = nginx_locations(conf)
    for side in ("in", "out"):
        body = locations[f"/media/{side}/"]
        assert re.search(rf"^\s*proxy_pass http://minio/mpr-media-{side}/;", body, re.M)
        assert "limit_except GET" in body and locations[f"= /media/{side}/"].strip() == "return 404;"


def test_compose_nginx_publishes_the_api_paths_and_nothing_else(compose):
    """What reaches the API through :8080 is its public paths; anything else (/metrics, /health) is a
    404 of nginx's own, and the API's metrics are on an internal METRICS_PORT that nothing publishes."""
    conf = (ROOT / "deploy" / "nginx.conf").read_text()
    locations = nginx_locations(conf)
    to_api = {name for name, body in locations.items() if "proxy_pass http://mpr_api" in body}
    assert to_api == {
        "= /",
        "/api/",
        "= /graphql",
        "= /console",
        "/console/",
        "/media/s/",
        "/media/keys/",
        "/media/licenses/",
        "= /schema",
        "/schema/",
    }
    assert locations["/"].strip() == "return 404;"
    assert not [name for name in locations if "metrics" in name or "health/" in name]
    # GraphQL subscriptions: the WebSocket upgrade is passed on.
    assert "proxy_set_header Upgrade $http_upgrade;" in conf and "proxy_http_version 1.1;" in conf
    api_env = compose["services"]["api"]["environment"]
    assert api_env["METRICS_PORT"] not in ("", "0", "8000")
    assert compose["services"]["nginx"]["ports"] == ["8080:8080"]


def test_compose_transcoder_grace_outlasts_its_shutdown(compose):
    t = compose["services"]["transcoder"]
    grace = int(t["stop_grace_period"].rstrip("s"))
    assert grace > int(t["environment"]["TRANSCODER_SHUTDOWN_GRACE"])
    assert t["deploy"]["replicas"] >= 2


# --- the Dockerfile ----------------------------------------------------------------------------
DOCKERFILE = ROOT / "Dockerfile"


def test_one_dockerfile_builds_every_service():
    r = run("hadolint", "--config", str(ROOT / ".hadolint.yaml"), str(DOCKERFILE))
    assert r.returncode == 0, r.stdout + r.stderr
    text = DOCKERFILE.read_text()
    assert not list((ROOT / "services").glob("*/Dockerfile")), "one Dockerfile, chosen by SERVICE"
    user = re.findall(r"^USER (\S+)", text, re.M)
    assert user and user[-1].split(":")[0] not in ("root", "0")
    assert '--package "mpr-${SERVICE}"' in text and "--frozen" in text
    # the entry point is the service's own console script, linked under one name
    assert 'ln -s "mpr-${SERVICE}" /app/.venv/bin/mpr-service' in text
    assert re.search(r'^ENTRYPOINT \["mpr-service"\]', text, re.M)
    # ffprobe / FFmpeg only where they run
    with_ffmpeg = re.search(
        r"^\s*([\w|]+)\) apt-get update\s*\\\n\s*&& apt-get install -y --no-install-recommends ffmpeg",
        text,
        re.M,
    )
    assert with_ffmpeg and set(with_ffmpeg.group(1).split("|")) == {"catalog", "transcoder"}
    assert "HEALTHCHECK" in text


@pytest.mark.parametrize("svc", SERVICES)
def test_each_service_image_is_the_dockerfile_with_its_name(svc, compose):
    build = compose["services"][svc]["build"]
    assert (ROOT / build["context"] / build["dockerfile"]).resolve() == DOCKERFILE
    assert build["args"] == {"SERVICE": svc}
    scripts = tomllib.loads((ROOT / "services" / svc / "pyproject.toml").read_text())["project"]["scripts"]
    assert f"mpr-{svc}" in scripts  # what the image links as mpr-service


# --- Kubernetes ----------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def k8s() -> list[dict]:
    docs = []
    for f in sorted((ROOT / "k8s").glob("*.yaml")):
        docs += [d for d in yaml.safe_load_all(f.read_text()) if d]
    return docs


def of_kind(docs, kind):
    return {d["metadata"]["name"]: d for d in docs if d["kind"] == kind}


def test_k8s_manifests_validate_against_kubernetes_schemas():
    files = [str(f) for f in sorted((ROOT / "k8s").glob("*.yaml")) if f.name != "kustomization.yaml"]
    r = run("kubernetes-validate", "--strict", "--quiet", *files)
    assert r.returncode == 0, r.stdout + r.stderr


def test_k8s_kustomization_lists_every_manifest():
    kust = yaml.safe_load((ROOT / "k8s" / "kustomization.yaml").read_text())
    files = {f.name for f in (ROOT / "k8s").glob("*.yaml")} - {"kustomization.yaml"}
    assert set(kust["resources"]) == files


def test_k8s_workloads_are_hardened_and_probed(k8s):
    deployments = of_kind(k8s, "Deployment")
    assert set(SERVICES) <= deployments.keys()
    for name in SERVICES:
        pod = deployments[name]["spec"]["template"]["spec"]
        assert pod["securityContext"]["runAsNonRoot"] is True
        assert pod["securityContext"]["seccompProfile"]["type"] == "RuntimeDefault"
        (c,) = pod["containers"]
        assert {"livenessProbe", "readinessProbe", "startupProbe"} <= c.keys(), name
        assert c["resources"]["requests"] and c["resources"]["limits"]["memory"]
        sc = c["securityContext"]
        assert sc["allowPrivilegeEscalation"] is False and sc["readOnlyRootFilesystem"] is True
        assert sc["capabilities"]["drop"] == ["ALL"]


def test_k8s_credentials_come_from_secrets(k8s):
    for doc in k8s:
        if doc["kind"] == "ConfigMap":
            assert not [k for k in doc["data"] if SECRETISH.search(k)], doc["metadata"]["name"]
        pod = (doc.get("spec", {}).get("template") or {}).get("spec")
        for c in (pod or {}).get("containers", []):
            for e in c.get("env", []):
                if SECRETISH.search(e["name"]):
                    assert "secretKeyRef" in e.get("valueFrom", {}), (doc["metadata"]["name"], e["name"])
    assert not of_kind(k8s, "Secret"), "no Secret with literal values is committed"


def test_k8s_transcoders_autoscale_on_consumer_lag_and_shut_down_gracefully(k8s):
    """One pool of transcoders per queue class, each scaled by KEDA on the lag of its own consumer."""
    from mpr_common.events import PRIORITIES

    deployments = of_kind(k8s, "Deployment")
    config = of_kind(k8s, "ConfigMap")["mpr-config"]["data"]
    scaled = {so["spec"]["scaleTargetRef"]["name"]: so for so in of_kind(k8s, "ScaledObject").values()}
    assert "transcoder" in scaled
    consumers: set[str] = set()
    for name, so in scaled.items():
        assert so["apiVersion"] == "keda.sh/v1alpha1"
        pod = deployments[name]["spec"]["template"]["spec"]
        env = {e["name"]: e.get("value") for e in pod["containers"][0]["env"]}
        classes = (env.get("TRANSCODER_CLASSES") or ",".join(PRIORITIES)).split(",")
        triggers = so["spec"]["triggers"]
        assert all(
            t["type"] == "nats-jetstream" and t["metadata"]["stream"] == s.JOBS_STREAM for t in triggers
        )
        assert {t["metadata"]["consumer"] for t in triggers} == {s.transcoders_durable(c) for c in classes}
        consumers |= {t["metadata"]["consumer"] for t in triggers}
        assert pod["terminationGracePeriodSeconds"] > int(config["TRANSCODER_SHUTDOWN_GRACE"])
    assert consumers == {s.transcoders_durable(p) for p in PRIORITIES}


def test_k8s_nats_is_a_jetstream_cluster(k8s):
    nats = of_kind(k8s, "StatefulSet")["nats"]
    assert nats["spec"]["replicas"] >= 3
    conf = of_kind(k8s, "ConfigMap")["nats-config"]["data"]["nats.conf"]
    assert "jetstream" in conf and "cluster" in conf
    assert of_kind(k8s, "ConfigMap")["mpr-config"]["data"]["NATS_STREAM_REPLICAS"] == "3"


# --- NATS identities ---------------------------------------------------------------------------
def test_nats_authorization_is_generated_from_the_identities_table(compose, k8s):
    import contextlib
    import io

    from mpr_common.identities import IDENTITIES, main

    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        main([])
    rendered = out.getvalue()
    assert (ROOT / "deploy" / "nats-auth.conf").read_text() == rendered, (
        "run: python -m mpr_common.identities > deploy/nats-auth.conf"
    )
    assert of_kind(k8s, "ConfigMap")["nats-config"]["data"]["auth.conf"] == rendered
    assert "include ./auth.conf" in of_kind(k8s, "ConfigMap")["nats-config"]["data"]["nats.conf"]
    nats_env = {
        e["name"]
        for e in of_kind(k8s, "StatefulSet")["nats"]["spec"]["template"]["spec"]["containers"][0]["env"]
    }
    assert {f"NATS_{i.upper()}_PASSWORD" for i in IDENTITIES} <= nats_env
    for name in SERVICES:  # every service connects as itself, with a password from a Secret
        assert compose["services"][name]["environment"]["NATS_USER"] == name
        pod = of_kind(k8s, "Deployment")[name]["spec"]["template"]["spec"]
        env = {e["name"]: e for e in pod["containers"][0]["env"]}
        assert env["NATS_USER"]["value"] == name
        assert env["NATS_PASSWORD"]["valueFrom"]["secretKeyRef"] == {
            "name": "mpr-nats",
            "key": f"NATS_{name.upper()}_PASSWORD",
        }
    assert compose["services"]["nats-setup"]["environment"]["NATS_USER"] == "setup"


def test_the_deployed_authorization_works_on_a_real_nats_server(tmp_path):
    """deploy/nats-auth.conf with passwords from the environment: identities connect, anonymous is refused."""
    import asyncio
    import os
    import shutil

    import nats

    from mpr_common.identities import IDENTITIES, env_password_name
    from mpr_devstack.servers import free_port, wait_until

    port = free_port()
    passwords = {i: f"pw-{i}" for i in IDENTITIES}
    env = {**os.environ, **{env_password_name(i): pw for i, pw in passwords.items()}}
    binary = shutil.which("nats-server", path=str(BIN)) or "nats-server"
    proc = subprocess.Popen(
        [binary, "-a", "127.0.0.1", "-p", str(port), "-c", str(ROOT / "deploy" / "nats-auth.conf")],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:

        async def connect(url: str) -> None:
            nc = await nats.connect(url, max_reconnect_attempts=0, allow_reconnect=False, connect_timeout=2)
            await nc.close()

        wait_until(
            lambda: asyncio.run(connect(f"nats://api:{passwords['api']}@127.0.0.1:{port}")) is None,
            10,
            "nats",
        )
        with pytest.raises(Exception, match="(?i)authoriz"):
            asyncio.run(connect(f"nats://127.0.0.1:{port}"))
        with pytest.raises(Exception, match="(?i)authoriz"):
            asyncio.run(connect(f"nats://api:wrong@127.0.0.1:{port}"))
    finally:
        proc.terminate()
        proc.wait(10)


def test_k8s_durability_and_hardening(k8s):
    import json

    conf = of_kind(k8s, "ConfigMap")["nats-config"]["data"]["nats.conf"]
    assert "sync_interval: always" in conf
    affinity = of_kind(k8s, "StatefulSet")["nats"]["spec"]["template"]["spec"]["affinity"]["podAntiAffinity"]
    assert "requiredDuringSchedulingIgnoredDuringExecution" in affinity
    pdbs = {
        d["spec"]["selector"]["matchLabels"]["app.kubernetes.io/name"]
        for d in of_kind(k8s, "PodDisruptionBudget").values()
    }
    assert {"nats", "postgres", "minio"} <= pdbs
    policies = of_kind(k8s, "NetworkPolicy")
    deny = policies["default-deny"]["spec"]
    assert deny["podSelector"] == {} and set(deny["policyTypes"]) == {"Ingress", "Egress"}
    for doc in k8s:
        for c in doc.get("spec", {}).get("template", {}).get("spec", {}).get("containers", []):
            image, tag = c["image"].rsplit(":", 1)
            # PostgreSQL's releases are major.minor; everything else major.minor.patch or a dated release.
            pinned = r"\d+\.\d+" if image == "postgres" else r"\d+\.\d+\.\d+|RELEASE\."
            assert re.match(pinned, tag), f"floating image tag: {c['image']}"
    s3_policies = of_kind(k8s, "ConfigMap")["minio-policies"]["data"]
    for name in SERVICES:
        assert json.loads(s3_policies[f"{name}.json"]) == json.loads(
            (ROOT / "deploy" / "minio-policies" / f"{name}.json").read_text()
        )
        env = {
            e["name"]: e
            for e in of_kind(k8s, "Deployment")[name]["spec"]["template"]["spec"]["containers"][0]["env"]
        }
        assert env["AWS_SECRET_ACCESS_KEY"]["valueFrom"]["secretKeyRef"]["name"] == f"mpr-s3-{name}"


def test_k8s_scrapes_metrics_on_the_ops_port_only(k8s):
    """Every scraped pod, the API's included, is scraped on METRICS_PORT, a port it declares; the API's
    own port (published by the ingress) is never scraped and monitoring may reach only the ops port."""
    metrics_port = int(of_kind(k8s, "ConfigMap")["mpr-config"]["data"]["METRICS_PORT"])
    deployments = of_kind(k8s, "Deployment")
    for name in SERVICES:
        template = deployments[name]["spec"]["template"]
        annotations = template["metadata"]["annotations"]
        assert int(annotations["prometheus.io/port"]) == metrics_port, name
        (c,) = template["spec"]["containers"]
        assert metrics_port in {p["containerPort"] for p in c["ports"]}, name
    api = deployments["api"]["spec"]["template"]["spec"]["containers"][0]
    api_port = next(int(e["value"]) for e in api["env"] if e["name"] == "API_PORT")
    assert api_port != metrics_port
    scrape = of_kind(k8s, "NetworkPolicy")["metrics-scrape"]["spec"]["ingress"]
    assert {p["port"] for rule in scrape for p in rule["ports"]} == {metrics_port}


def test_k8s_nats_speaks_tls_and_every_client_verifies_it(k8s):
    conf = of_kind(k8s, "ConfigMap")["nats-config"]["data"]["nats.conf"]
    assert re.search(r"tls \{\s*cert_file: /etc/nats-tls/tls.crt\s*key_file: /etc/nats-tls/tls.key", conf)
    cluster = conf[conf.index("cluster {") :]
    assert re.search(r"tls \{[^}]*ca_file: /etc/nats-tls/ca.crt[^}]*verify: true", cluster)  # routes too
    config = of_kind(k8s, "ConfigMap")["mpr-config"]["data"]
    assert all(u.startswith("tls://") for u in config["NATS_URL"].split(","))
    assert config["NATS_CA_FILE"] == "/etc/nats-tls/ca.crt"
    pods = [
        d["spec"]["template"]["spec"]
        for d in k8s
        if d["kind"] in ("Deployment", "Job") and d["metadata"]["name"] in (*SERVICES, "mpr-setup")
    ]
    for pod in pods:
        mounts = {m["mountPath"] for m in pod["containers"][0]["volumeMounts"]}
        assert "/etc/nats-tls" in mounts
        assert any(v.get("secret", {}).get("secretName") == "nats-tls" for v in pod["volumes"])
