"""Where a webhook may be sent. A subscription's URL is chosen by an API client, and the API runs
inside the network it must not expose: loopback, private, link-local (169.254.169.254 is the cloud
metadata service), shared (CGNAT), multicast, unspecified and other special addresses are refused
unless the operator allows their network (``WEBHOOK_ALLOW_NETWORKS``).

The check is made where the connection is made: :class:`GuardedBackend` resolves the host, refuses
the connection if any address it resolves to is refused, and connects to an address it checked. No
second lookup happens between the check and the connect, so a name that resolves to a public address
for the check and to 127.0.0.1 for the connection (DNS rebinding) gets nowhere. Redirects are not
followed and proxies from the environment are not used (either would connect somewhere unchecked)."""

from __future__ import annotations

import asyncio
import ipaddress
import socket
import ssl
from collections.abc import Iterable, Sequence
from typing import Any

import httpcore
import httpx

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network

_V4 = [
    ("0.0.0.0/8", "unspecified"),
    ("10.0.0.0/8", "private"),
    ("100.64.0.0/10", "shared address space (CGNAT)"),
    ("127.0.0.0/8", "loopback"),
    ("169.254.0.0/16", "link-local (cloud metadata)"),
    ("172.16.0.0/12", "private"),
    ("192.0.0.0/24", "IETF protocol assignments"),
    ("192.0.2.0/24", "documentation"),
    ("192.88.99.0/24", "6to4 relay anycast"),
    ("192.168.0.0/16", "private"),
    ("198.18.0.0/15", "benchmarking"),
    ("198.51.100.0/24", "documentation"),
    ("203.0.113.0/24", "documentation"),
    ("224.0.0.0/4", "multicast"),
    ("240.0.0.0/4", "reserved (and broadcast)"),
]
_V6 = [
    ("::/128", "unspecified"),
    ("::1/128", "loopback"),
    ("100::/64", "discard-only"),
    ("64:ff9b:1::/48", "local-use NAT64"),
    ("2001::/32", "Teredo"),
    ("2001:2::/48", "benchmarking"),
    ("2001:db8::/32", "documentation"),
    ("fc00::/7", "unique local (private)"),
    ("fe80::/10", "link-local"),
    ("fec0::/10", "site-local"),
    ("ff00::/8", "multicast"),
]
REFUSED: list[tuple[Network, str]] = [(ipaddress.ip_network(n), why) for n, why in _V4 + _V6]

_MAPPED = ipaddress.ip_network("::ffff:0:0/96")  # IPv4-mapped: the socket reaches the IPv4 address
_COMPATIBLE = ipaddress.ip_network("::/96")  # deprecated IPv4-compatible
_NAT64 = ipaddress.ip_network("64:ff9b::/96")  # well-known NAT64 prefix: the gateway reaches the IPv4
_SIX_TO_FOUR = ipaddress.ip_network("2002::/16")


class AddressRefused(Exception):
    """A webhook URL, or an address its host resolves to, that the policy refuses. Final: never
    retried (not an httpx/httpcore error, so it is not mistaken for a network failure)."""


def parse_networks(cidrs: Iterable[str]) -> list[Network]:
    """``WEBHOOK_ALLOW_NETWORKS``; a bare address is its own /32 or /128. Raises ValueError."""
    return [ipaddress.ip_network(c.strip(), strict=False) for c in cidrs if c.strip()]


def embedded_ipv4(ip: IPAddress) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 address leads to: IPv4-mapped, IPv4-compatible, NAT64 or 6to4."""
    if not isinstance(ip, ipaddress.IPv6Address):
        return None
    if ip in _MAPPED or ip in _NAT64 or (ip in _COMPATIBLE and int(ip) > 1):
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    if ip in _SIX_TO_FOUR:
        return ipaddress.IPv4Address((int(ip) >> 80) & 0xFFFFFFFF)
    return None


def refusal(ip: IPAddress, allowed: Sequence[Network] = ()) -> str | None:
    """Why ``ip`` may not be reached, or None. An allowed network admits the address, and an IPv6
    address that leads to an IPv4 one is judged as that IPv4 address too (::ffff:127.0.0.1 is
    loopback; allowing 127.0.0.1 allows it)."""
    ip = ipaddress.ip_address(str(ip).split("%", 1)[0])  # a zone index (fe80::1%eth0) changes nothing
    v4 = embedded_ipv4(ip)
    if any(ip in net or (v4 is not None and v4 in net) for net in allowed):
        return None
    for candidate in (ip, v4):
        if candidate is None:
            continue
        for net, why in REFUSED:
            if candidate in net:
                prefix = "" if candidate is ip else f"{ip} leads to {candidate}: "
                return prefix + why
    return None


def check_url(url: str, allow_http: bool) -> httpx.URL:
    """A subscription URL's form: https (http only when allowed), a host, no credentials in it."""
    try:
        parsed = httpx.URL(url)
    except (httpx.InvalidURL, ValueError) as exc:
        raise AddressRefused(f"not a URL: {exc}") from None
    schemes = ("https", "http") if allow_http else ("https",)
    if parsed.scheme not in schemes:
        raise AddressRefused(
            "the URL must be https" + ("" if allow_http else " (WEBHOOK_ALLOW_HTTP permits http)")
        )
    if not parsed.host:
        raise AddressRefused("the URL has no host")
    if parsed.userinfo:
        raise AddressRefused("credentials in the URL are refused: authenticate with the signature")
    return parsed


async def resolve_checked(host: str, port: int, allowed: Sequence[Network]) -> list[str]:
    """The addresses ``host`` resolves to now, each allowed; refused if any one is not (a name with
    a private address among public ones is refused rather than half-trusted)."""
    try:
        infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise httpcore.ConnectError(f"{host} does not resolve: {exc.strerror}") from None
    addresses = list(dict.fromkeys(str(info[4][0]) for info in infos))
    for address in addresses:
        why = refusal(ipaddress.ip_address(address.split("%", 1)[0]), allowed)
        if why is not None:
            shown = host if host == address else f"{host} resolves to {address}:"
            raise AddressRefused(f"{shown} {why} address refused (WEBHOOK_ALLOW_NETWORKS admits it)")
    return addresses


class GuardedBackend(httpcore.AsyncNetworkBackend):
    """httpcore's network backend, checking each address before it connects to it (see above)."""

    def __init__(self, allowed: Sequence[Network], inner: httpcore.AsyncNetworkBackend | None = None):
        self.allowed = list(allowed)
        self.inner = inner or httpcore.AnyIOBackend()

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        addresses = await resolve_checked(host, port, self.allowed)
        error: Exception | None = None
        for address in addresses:  # TLS still verifies the certificate against ``host`` (the SNI)
            try:
                return await self.inner.connect_tcp(address, port, timeout, local_address, socket_options)
            except httpcore.ConnectError as exc:
                error = exc
        raise error or httpcore.ConnectError(f"{host} has no address")

    async def connect_unix_socket(
        self, path: str, timeout: float | None = None, socket_options: Iterable[Any] | None = None
    ) -> httpcore.AsyncNetworkStream:
        raise AddressRefused("webhooks do not connect to unix sockets")

    async def sleep(self, seconds: float) -> None:
        await self.inner.sleep(seconds)


LIMITS = httpx.Limits(max_connections=100, max_keepalive_connections=20)


class GuardedTransport(httpx.AsyncHTTPTransport):
    """httpx's transport over a connection pool whose every connection goes through GuardedBackend.
    httpx does not take a network backend, so the pool it builds is replaced by an equal one that has
    it (tests/unit/api/test_webhooks_ssrf.py fails if a connection ever bypasses the guard)."""

    def __init__(
        self,
        allowed: Sequence[Network],
        limits: httpx.Limits = LIMITS,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        super().__init__(trust_env=False, limits=limits)
        self._pool = httpcore.AsyncConnectionPool(
            ssl_context=ssl_context or httpx.create_ssl_context(),
            max_connections=limits.max_connections,
            max_keepalive_connections=limits.max_keepalive_connections,
            keepalive_expiry=limits.keepalive_expiry,
            network_backend=GuardedBackend(allowed),
        )


def guarded_client(allowed: Sequence[Network], timeout: float, **kw: Any) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        transport=GuardedTransport(allowed, **kw),
        follow_redirects=False,
        trust_env=False,
        timeout=httpx.Timeout(timeout),
    )
