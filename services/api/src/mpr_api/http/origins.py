"""Web origins named in settings (API_PLAYER_ORIGINS), read once at start into the form browsers send in
their ``Origin`` header, so that a request is checked by plain string equality and nothing about an
``Origin`` header is ever parsed while serving.

A browser serializes an origin as ``scheme://host[:port]``: scheme and host in lower case, an IDN host
in punycode, the scheme's default port left out, never a path, a query or user information. A setting
that is not an origin in that sense (a URL with a path, a wildcard host, ``null``, a bare host name) is
refused at start with a message naming the value, rather than silently never matching."""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable, Iterable

ANY_ORIGIN = "*"
_DEFAULT_PORTS = {"http": 80, "https": 443}
# A host as browsers send it: DNS labels (letters, digits, hyphens; punycode for IDNs), or an IP literal.
_LABEL = r"(?!-)[a-z0-9-]{1,63}(?<!-)"
_HOST = re.compile(rf"{_LABEL}(?:\.{_LABEL})*")
# A host that ends in a number is an IPv4 address to a browser (WHATWG URL), which sends it as a dotted
# quad: 127.1, 0x7f.0.0.1 or 010.0.0.1 would never match what a browser sends.
_ENDS_IN_A_NUMBER = re.compile(r"(?:^|.*\.)(?:[0-9]+|0x[0-9a-f]*)")
_QUAD_PART = re.compile(r"0|[1-9][0-9]{0,2}")
_ORIGIN = re.compile(
    r"(?P<scheme>[a-z][a-z0-9+.-]*)://(?P<host>\[[^\]/]*\]|[^:/?#@]*)(?::(?P<port>[^/?#]*))?"
)
_EXAMPLE = "https://player.example.com or http://localhost:8080"


def parse_origins(values: Iterable[str], setting: str) -> frozenset[str]:
    """The origins of ``values`` (each stripped; empty ones skipped), serialized as browsers send them;
    ``{"*"}`` for any origin. Raises :class:`ValueError` naming ``setting`` and the offending value."""
    found = {v.strip() for v in values} - {""}
    if ANY_ORIGIN in found:
        if len(found) > 1:
            raise ValueError(f"{setting}: {ANY_ORIGIN!r} (any origin) or a list of origins, not both")
        return frozenset({ANY_ORIGIN})
    return frozenset(parse_origin(v, setting) for v in found)


def parse_origin(value: str, setting: str) -> str:
    """One origin, serialized as browsers send it (``HTTPS://Player.Example.com:443`` is
    ``https://player.example.com``). Raises :class:`ValueError` naming ``setting`` and ``value``."""

    def refused(why: str) -> ValueError:
        return ValueError(f"{setting}: {value!r} is not an origin ({why}); e.g. {_EXAMPLE}")

    if not value.isascii() or not value.isprintable():
        raise refused("ASCII only: write an international host name in punycode")
    lowered = value.lower()
    match = _ORIGIN.fullmatch(lowered)
    if match is None:
        if "://" not in lowered:
            raise refused("scheme://host[:port]")
        raise refused("no path, query, fragment or user name: scheme://host[:port] only")
    scheme, host, port_text = match["scheme"], match["host"], match["port"]
    if scheme not in _DEFAULT_PORTS:
        raise refused("the scheme is http or https")
    if "*" in host:
        raise refused(f"no wildcards: list each origin, or {ANY_ORIGIN!r} alone for any")
    host = _host(host, refused)
    if port_text is None:
        return f"{scheme}://{host}"
    if not (port_text.isdigit() and len(port_text) <= 5 and 0 < int(port_text) < 65536):
        raise refused("the port is a number from 1 to 65535")
    port = int(port_text)
    return f"{scheme}://{host}" if port == _DEFAULT_PORTS[scheme] else f"{scheme}://{host}:{port}"


def _host(host: str, refused: Callable[[str], ValueError]) -> str:
    """``host`` (lower case) as browsers write it: an IPv6 literal compressed (``[0:0:0:0:0:0:0:1]`` is
    ``[::1]``), an IPv4 address only as a dotted quad, a DNS name as it is."""
    if host.startswith("["):
        try:
            address = ipaddress.IPv6Address(host[1:-1])
        except ValueError:
            raise refused("not an IPv6 address") from None
        if address.scope_id is not None:
            raise refused("no zone in an IPv6 address: browsers send none")
        return f"[{address.compressed}]"
    if not _HOST.fullmatch(host):
        raise refused("not a host name")
    if _ENDS_IN_A_NUMBER.fullmatch(host):
        parts = host.split(".")
        if len(parts) != 4 or not all(_QUAD_PART.fullmatch(p) and int(p) < 256 for p in parts):
            raise refused("an IPv4 address is four numbers from 0 to 255, e.g. 127.0.0.1")
    return host
