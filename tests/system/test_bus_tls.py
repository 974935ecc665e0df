"""NATS over TLS, as compose and k8s run it: with the CA (NATS_CA_FILE) every service's connection
options verify the server; a client without TLS is refused."""

from __future__ import annotations

import asyncio
import subprocess
from pathlib import Path

import nats
import pytest

from mpr_common.bus import connect
from mpr_common.identities import generate_passwords
from mpr_common.settings import NatsSettings
from mpr_devstack.servers import NatsServer

pytestmark = pytest.mark.system


def make_certs(d: Path) -> tuple[Path, Path, Path]:
    """A CA and a server certificate for 127.0.0.1 (what deploy/ makes for the nats host)."""

    def openssl(*args: str) -> None:
        subprocess.run(["openssl", *args], check=True, capture_output=True, cwd=d)

    openssl(
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-days",
        "2",
        "-subj",
        "/CN=mpr-ca",
        "-keyout",
        "ca.key",
        "-out",
        "ca.crt",
    )
    openssl(
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-subj",
        "/CN=nats",
        "-keyout",
        "server.key",
        "-out",
        "server.csr",
    )
    (d / "san.ext").write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
    openssl(
        "x509",
        "-req",
        "-in",
        "server.csr",
        "-CA",
        "ca.crt",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-days",
        "2",
        "-extfile",
        "san.ext",
        "-out",
        "server.crt",
    )
    return d / "ca.crt", d / "server.crt", d / "server.key"


def test_services_connect_over_verified_tls_and_plain_clients_are_refused(tmp_path):
    ca, cert, key = make_certs(tmp_path)
    passwords = generate_passwords()
    server = NatsServer(
        tmp_path / "js", log_path=tmp_path / "nats.log", passwords=passwords, tls=(cert, key)
    ).start()
    try:

        async def as_service() -> bool:
            settings = NatsSettings(
                url=server.address, user="api", password=passwords["api"], ca_file=str(ca)
            )
            nc = await connect(settings, "tls-test")
            try:
                return nc.is_connected and nc.connected_url is not None
            finally:
                await nc.close()

        assert asyncio.run(as_service())

        async def plain() -> None:
            await nats.connect(
                server.url_as("api"), max_reconnect_attempts=0, allow_reconnect=False, connect_timeout=2
            )

        with pytest.raises(Exception):  # noqa: B017 - any refusal: the server only speaks TLS
            asyncio.run(plain())

        async def wrong_ca() -> None:
            other = tmp_path / "other"
            other.mkdir()
            bad_ca, _, _ = make_certs(other)
            settings = NatsSettings(
                url=server.address, user="api", password=passwords["api"], ca_file=str(bad_ca)
            )
            opts = {**settings.connect_options("x"), "max_reconnect_attempts": 0, "allow_reconnect": False}
            await nats.connect(**opts)

        with pytest.raises(Exception, match="(?i)certificate|ssl"):
            asyncio.run(wrong_ca())
    finally:
        server.stop()
