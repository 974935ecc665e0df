"""Where webhooks may not go: each refused kind of address, URL forms that hide one, a name that
resolves to one (checked where the connection is made, once: no rebinding between check and connect),
redirects and proxies that would lead elsewhere. Each test fails without the check it names; the
ones with a receiver show the same request arriving once its network is allowed."""

from __future__ import annotations

import asyncio
import ipaddress
import socket

import httpcore
import pytest

from mpr_api.webhooks.sender import Sender
from mpr_api.webhooks.ssrf import (
    AddressRefused,
    GuardedBackend,
    check_url,
    guarded_client,
    parse_networks,
    refusal,
)
from tests.webhooks_receiver import Receiver

LOOPBACK = parse_networks(["127.0.0.1"])


@pytest.mark.parametrize(
    ("address", "why"),
    [
        ("127.0.0.1", "loopback"),
        ("127.4.5.6", "loopback"),
        ("10.1.2.3", "private"),
        ("172.16.0.1", "private"),
        ("172.31.255.254", "private"),
        ("192.168.1.1", "private"),
        ("169.254.169.254", "link-local (cloud metadata)"),
        ("100.64.0.1", "CGNAT"),
        ("0.0.0.0", "unspecified"),
        ("224.0.0.251", "multicast"),
        ("255.255.255.255", "broadcast"),
        ("198.18.0.1", "benchmarking"),
        ("::1", "loopback"),
        ("::", "unspecified"),
        ("fc00::1", "unique local"),
        ("fd12:3456::1", "unique local"),
        ("fe80::1", "link-local"),
        ("fe80::1%2", "link-local"),
        ("ff02::1", "multicast"),
        ("::ffff:127.0.0.1", "leads to 127.0.0.1: loopback"),  # IPv4-mapped
        ("::ffff:169.254.169.254", "leads to 169.254.169.254: link-local"),
        ("::ffff:10.0.0.1", "leads to 10.0.0.1: private"),
        ("::127.0.0.1", "leads to 127.0.0.1: loopback"),  # IPv4-compatible
        ("64:ff9b::a9fe:a9fe", "leads to 169.254.169.254: link-local"),  # NAT64
        ("2002:7f00:1::", "leads to 127.0.0.1: loopback"),  # 6to4
        ("2001:db8::1", "documentation"),
        ("2001::1", "Teredo"),
    ],
)
def test_special_addresses_are_refused(address, why):
    assert why in (refusal(ipaddress.ip_address(address.split("%")[0])) or "")


@pytest.mark.parametrize(
    "address",
    [
        "8.8.8.8",
        "1.1.1.1",
        "172.32.0.1",
        "100.128.0.1",
        "2606:4700:4700::1111",
        "::ffff:8.8.8.8",
        "2002:808:808::",
    ],
)
def test_public_addresses_pass(address):
    assert refusal(ipaddress.ip_address(address)) is None


def test_an_allowed_network_admits_exactly_its_addresses_in_either_notation():
    assert refusal(ipaddress.ip_address("127.0.0.1"), LOOPBACK) is None
    assert refusal(ipaddress.ip_address("::ffff:127.0.0.1"), LOOPBACK) is None
    assert refusal(ipaddress.ip_address("127.0.0.2"), LOOPBACK) == "loopback"
    assert refusal(ipaddress.ip_address("::1"), LOOPBACK) == "loopback"
    assert refusal(ipaddress.ip_address("10.9.8.7"), parse_networks(["10.0.0.0/8", " "])) is None
    with pytest.raises(ValueError):
        parse_networks(["10.0.0.0/33"])


@pytest.mark.parametrize(
    ("url", "allow_http", "why"),
    [
        ("http://hooks.example/x", False, "must be https"),
        ("ftp://hooks.example/x", True, "must be https"),
        ("https://user:pw@hooks.example/x", False, "credentials"),
        ("https:///x", False, "no host"),
    ],
)
def test_url_forms_that_are_refused(url, allow_http, why):
    with pytest.raises(AddressRefused, match=why):
        check_url(url, allow_http)
    assert check_url("https://hooks.example:8443/x?a=1", False).port == 8443
    assert check_url("http://hooks.example/x", True).scheme == "http"


@pytest.fixture
def receiver():
    r = Receiver().start()
    yield r
    r.stop()


@pytest.mark.parametrize(
    "host", ["127.0.0.1", "localhost", "2130706433", "0x7f.1", "[::ffff:127.0.0.1]"]
)  # the same loopback address written five ways: the guard judges what they resolve to
async def test_a_loopback_receiver_is_refused_until_its_network_is_allowed(receiver, host):
    url = f"http://{host}:{receiver.port}/hook"
    async with guarded_client([], timeout=5) as client:
        with pytest.raises(AddressRefused, match="loopback"):
            await client.post(url, content=b"{}")
    assert receiver.on("/hook") == []
    if host == "localhost":
        return  # may resolve to ::1 too, which 127.0.0.1 does not admit
    async with guarded_client(LOOPBACK, timeout=5) as client:
        assert (await client.post(url, content=b"{}")).status_code == 200
    assert len(receiver.on("/hook")) == 1


class Recording(httpcore.AsyncNetworkBackend):
    """Where the guard actually connects (and it never succeeds: no traffic leaves the machine)."""

    def __init__(self) -> None:
        self.connected: list[str] = []

    async def connect_tcp(self, host, port, timeout=None, local_address=None, socket_options=None):
        self.connected.append(host)
        raise httpcore.ConnectError("recorded")

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)


async def test_the_address_connected_to_is_the_one_checked_no_second_lookup(monkeypatch):
    """DNS rebinding: the name answers a public address first and loopback after. The guard looks it
    up once and connects to what it checked, so loopback is never reached."""
    answers = iter(["8.8.8.8", "127.0.0.1", "127.0.0.1"])
    lookups: list[str] = []

    async def getaddrinfo(host, port, *args, **kw):
        lookups.append(host)
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (next(answers), port))]

    monkeypatch.setattr(asyncio.get_running_loop(), "getaddrinfo", getaddrinfo)
    recorder = Recording()
    backend = GuardedBackend([], inner=recorder)
    with pytest.raises(httpcore.ConnectError):
        await backend.connect_tcp("rebind.example", 443)
    assert lookups == ["rebind.example"] and recorder.connected == ["8.8.8.8"]
    with pytest.raises(AddressRefused, match="rebind.example resolves to 127.0.0.1"):
        await backend.connect_tcp("rebind.example", 443)  # the next connection looks again, and refuses
    assert recorder.connected == ["8.8.8.8"]


async def test_a_name_with_one_refused_address_among_public_ones_is_refused(monkeypatch):
    async def getaddrinfo(host, port, *args, **kw):
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (a, port)) for a in ("8.8.8.8", "10.0.0.5")]

    monkeypatch.setattr(asyncio.get_running_loop(), "getaddrinfo", getaddrinfo)
    recorder = Recording()
    with pytest.raises(AddressRefused, match="10.0.0.5: private"):
        await GuardedBackend([], inner=recorder).connect_tcp("mixed.example", 443)
    assert recorder.connected == []


async def test_a_name_is_sent_as_the_host_while_the_checked_address_is_connected(monkeypatch, receiver):
    real = asyncio.get_running_loop().getaddrinfo

    async def getaddrinfo(host, port, *args, **kw):
        return await real("127.0.0.1" if host == "hooks.example" else host, port, *args, **kw)

    monkeypatch.setattr(asyncio.get_running_loop(), "getaddrinfo", getaddrinfo)
    async with guarded_client(LOOPBACK, timeout=5) as client:
        r = await client.post(f"http://hooks.example:{receiver.port}/named", content=b"{}")
    assert (
        r.status_code == 200 and receiver.on("/named")[0].headers["host"] == f"hooks.example:{receiver.port}"
    )


async def test_redirects_are_not_followed(receiver):
    receiver.script["/moved"] = [307]
    receiver.headers["/moved"] = {"location": receiver.url("/elsewhere")}
    sender = Sender(LOOPBACK, timeout=5, allow_http=True)
    try:
        out = await sender.post(receiver.url("/moved"), b"{}", {})
    finally:
        await sender.aclose()
    assert out.attempt.status_code == 307 and "redirects are not followed" in (out.attempt.error or "")
    assert receiver.on("/elsewhere") == []


async def test_proxies_from_the_environment_are_not_used(monkeypatch, receiver):
    """A proxy would make the connection itself, to wherever the URL says, past the guard."""
    proxy = Receiver().start()
    try:
        for name in ("HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy"):
            monkeypatch.setenv(name, f"http://127.0.0.1:{proxy.port}")
        monkeypatch.delenv("NO_PROXY", raising=False)
        monkeypatch.delenv("no_proxy", raising=False)
        async with guarded_client(LOOPBACK, timeout=5) as client:
            assert (await client.post(receiver.url("/direct"), content=b"{}")).status_code == 200
        assert proxy.received == [] and len(receiver.on("/direct")) == 1
    finally:
        proxy.stop()


async def test_the_sender_checks_scheme_and_address_again_at_delivery_time(receiver):
    """A subscription made while http or loopback was allowed is refused once they are not."""
    strict = Sender([], timeout=5, allow_http=True)
    https_only = Sender(LOOPBACK, timeout=5, allow_http=False)
    try:
        refused = await strict.post(receiver.url("/late"), b"{}", {})
        plain = await https_only.post(receiver.url("/late"), b"{}", {})
    finally:
        await strict.aclose()
        await https_only.aclose()
    assert refused.refused and "loopback" in (refused.attempt.error or "")
    assert plain.refused and "https" in (plain.attempt.error or "")
    assert receiver.on("/late") == []
