"""Which addresses a callback may reach: the defence against making the service a proxy (SSRF).

A callback host is resolved once; every address it resolves to must pass, and the connection then
goes to a checked address, so a DNS answer that changes between check and connect (rebinding)
cannot redirect it. IPv6 forms that carry an IPv4 address (IPv4-mapped, NAT64, 6to4, Teredo) are
judged by that address.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

import httpx

from server.settings import CallbackSettings

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
Resolver = Callable[[str, int], Sequence[str]]

_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")
_SITE_LOCAL = ipaddress.IPv6Network("fec0::/10")  # deprecated, but still internal where used
_BROADCAST = ipaddress.IPv4Address("255.255.255.255")


class CallbackRefused(Exception):
    """The callback URL's host is, or resolves to, an address the policy refuses."""


class ResolutionUnavailable(Exception):
    """The name could not be resolved for now (DNS temporarily failing); worth trying again."""


def system_resolver(host: str, port: int) -> list[str]:
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        if exc.errno == socket.EAI_AGAIN:
            raise ResolutionUnavailable(f"cannot resolve {host} now: {exc.strerror}") from None
        raise CallbackRefused(f"cannot resolve {host}: {exc.strerror}") from None
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


def embedded_ipv4(address: IPAddress) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 address stands for, if it is one of the forms that carry one."""
    if isinstance(address, ipaddress.IPv4Address):
        return None
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address in _NAT64:
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    if address.sixtofour is not None:
        return address.sixtofour
    if address.teredo is not None:
        return address.teredo[1]  # the client's address
    return None


def ip_literal(host: str) -> IPAddress | None:
    """The address `host` spells (IPv6 with or without brackets), or None for a name."""
    try:
        return ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return None


def never_allowed(address: IPAddress) -> str | None:
    """Why no configuration may admit this address, or None."""
    if address.is_unspecified:
        return "unspecified address"
    if address.is_link_local:
        return "link-local address (cloud metadata lives here)"
    if address.is_multicast:
        return "multicast address"
    if address == _BROADCAST:
        return "broadcast address"
    if address.is_reserved:
        return "reserved address"
    return None


@dataclass(frozen=True)
class CallbackPolicy:
    allow_private_networks: bool = False
    allowed_cidrs: tuple[IPNetwork, ...] = ()
    allowed_hosts: frozenset[str] = field(default_factory=frozenset)

    @classmethod
    def from_settings(cls, callback: CallbackSettings) -> CallbackPolicy:
        return cls.of(callback.allow_private_networks, callback.allowed_cidrs, callback.allowed_hosts)

    @classmethod
    def of(cls, allow_private: bool, cidrs: Iterable[IPNetwork], hosts: Iterable[str]) -> CallbackPolicy:
        return cls(allow_private, tuple(cidrs), frozenset(h.lower().rstrip(".") for h in hosts))

    def check_url(self, url: str, resolve: Resolver = system_resolver) -> tuple[str, int, list[str]]:
        """Host, port and checked addresses of an http(s) URL; `CallbackRefused` when refused."""
        parsed = httpx.URL(url)
        # The host as httpx will send it (IDNA 2008 A-label), not Python's IDNA 2003 spelling.
        host = parsed.raw_host.decode("ascii")
        port = parsed.port or (443 if parsed.scheme == "https" else 80)
        return host, port, self.checked_addresses(host, port, resolve)

    def refusal(self, host: str, address: IPAddress) -> str | None:
        """Why `address` (reached as `host`) is refused, or None when it is allowed."""
        # An IPv6 form that carries an IPv4 address is judged by that address alone: the wrapper
        # itself sits in ranges Python calls reserved.
        effective = embedded_ipv4(address) or address
        reason = None if effective.is_loopback else never_allowed(effective)
        if reason:
            return reason
        if effective.is_global and effective not in _SITE_LOCAL:
            return None
        if (
            self.allow_private_networks
            or host.lower().rstrip(".") in self.allowed_hosts
            or any(effective in network for network in self.allowed_cidrs)
        ):
            return None
        kind = "loopback" if effective.is_loopback else "private or internal"
        return f"{kind} address; allow it with callback.allow_private_networks or an allow-list"

    def checked_addresses(self, host: str, port: int, resolve: Resolver = system_resolver) -> list[str]:
        """Resolve `host` once and return its addresses, all of which passed; else `CallbackRefused`."""
        literal = ip_literal(host)
        addresses = [str(literal)] if literal is not None else list(resolve(host, port))
        if not addresses:
            raise CallbackRefused(f"{host} resolves to no address")
        for text in addresses:
            reason = self.refusal(host, ipaddress.ip_address(text.split("%", 1)[0]))
            if reason:
                raise CallbackRefused(f"{host} -> {text}: {reason}")
        return addresses
