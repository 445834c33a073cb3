"""The client's address of a request, and how much of it is kept. Pure functions, no I/O.

Behind a reverse proxy every request comes from the proxy; the client is in ``X-Forwarded-For``,
which anyone can also forge. So the header is believed only as far as it was written by proxies
the operator trusts (``web.trusted_proxies``): walking it from the right (the entry the nearest
proxy appended), the client is the first address that is not a trusted proxy.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable

__all__ = ["IPNetwork", "KEEP_MODES", "client_address", "kept_address", "parse_networks"]

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

#: How ``ingest.client_ip`` may keep an address.
KEEP_MODES = ("anonymized", "full", "none")


def parse_networks(entries: Iterable[str]) -> tuple[IPNetwork, ...]:
    """Addresses or CIDRs (``10.0.0.1``, ``10.0.0.0/8``, ``::1``) as networks; ValueError names a
    bad one."""
    networks = []
    for entry in entries:
        try:
            networks.append(ipaddress.ip_network(entry.strip(), strict=False))
        except ValueError:
            msg = f"{entry!r} is not an IP address or CIDR network"
            raise ValueError(msg) from None
    return tuple(networks)


def _address(text: str | None) -> IPAddress | None:
    if not text:
        return None
    text = text.strip()
    if text.startswith("[") and "]" in text:  # [2001:db8::1]:443
        text = text[1 : text.index("]")]
    elif text.count(":") == 1:  # 192.0.2.1:443
        text = text.partition(":")[0]
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return None
    mapped = getattr(address, "ipv4_mapped", None)
    return mapped or address


def _trusted(address: IPAddress, proxies: tuple[IPNetwork, ...]) -> bool:
    return any(address.version == net.version and address in net for net in proxies)


def client_address(
    peer: str | None, forwarded_for: str | None, proxies: tuple[IPNetwork, ...]
) -> IPAddress | None:
    """The client's address: ``peer`` (the TCP peer), unless it is a trusted proxy, in which case
    the ``X-Forwarded-For`` entries are walked from the right while they are trusted proxies too.
    An entry that is not an address ends the walk at the last address known. None when the peer
    itself is unknown (a Unix socket, a test client)."""
    address = _address(peer)
    if address is None or not forwarded_for or not proxies:
        return address
    for entry in reversed(forwarded_for.split(",")):
        if not _trusted(address, proxies):
            break
        hop = _address(entry)
        if hop is None:
            break
        address = hop
    return address


def kept_address(address: IPAddress | None, mode: str) -> str | None:
    """What is stored of ``address`` under ``ingest.client_ip`` = ``mode``: ``"full"`` the address,
    ``"anonymized"`` with the last IPv4 octet or the last 80 IPv6 bits zeroed, ``"none"``
    nothing."""
    if address is None or mode == "none":
        return None
    if mode == "full":
        return str(address)
    prefix = 24 if address.version == 4 else 48
    return str(ipaddress.ip_network(f"{address}/{prefix}", strict=False).network_address)
