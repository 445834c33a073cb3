"""The client's address behind trusted proxies, and how much of it is kept (pure functions)."""

from __future__ import annotations

import ipaddress

import pytest

from revivatech_actors.domain.addresses import client_address, kept_address, parse_networks

PROXIES = parse_networks(["127.0.0.1", "10.0.0.0/8", "::1"])


@pytest.mark.parametrize(
    ("peer", "forwarded", "client"),
    [
        ("198.51.100.7", None, "198.51.100.7"),
        (
            "198.51.100.7",
            "203.0.113.9",
            "198.51.100.7",
        ),  # not a trusted proxy: the header is ignored
        ("127.0.0.1", "203.0.113.9", "203.0.113.9"),
        ("127.0.0.1", "203.0.113.9, 10.1.2.3", "203.0.113.9"),  # through two trusted proxies
        (
            "127.0.0.1",
            "1.1.1.1, 203.0.113.9",
            "203.0.113.9",
        ),  # the client cannot push a forged hop past it
        ("127.0.0.1", "garbage, 10.1.2.3", "10.1.2.3"),  # the walk stops at what is not an address
        ("127.0.0.1", "", "127.0.0.1"),
        ("::1", "2001:db8::5", "2001:db8::5"),
        (
            "::ffff:127.0.0.1",
            "203.0.113.9",
            "203.0.113.9",
        ),  # an IPv4-mapped peer is its IPv4 address
        ("127.0.0.1", "[2001:db8::5]:4711", "2001:db8::5"),
        ("127.0.0.1", "203.0.113.9:4711", "203.0.113.9"),
        (None, "203.0.113.9", None),  # no peer (a Unix socket): unknown
    ],
)
def test_client_address(peer, forwarded, client):
    found = client_address(peer, forwarded, PROXIES)
    assert (None if found is None else str(found)) == client


def test_without_trusted_proxies_the_peer_is_the_client():
    assert str(client_address("127.0.0.1", "203.0.113.9", ())) == "127.0.0.1"


@pytest.mark.parametrize(
    ("address", "mode", "kept"),
    [
        ("203.0.113.77", "anonymized", "203.0.113.0"),
        ("2001:db8:aaaa:bbbb:cccc:dddd:eeee:ffff", "anonymized", "2001:db8:aaaa::"),
        ("203.0.113.77", "full", "203.0.113.77"),
        ("203.0.113.77", "none", None),
    ],
)
def test_kept_address(address, mode, kept):
    assert kept_address(ipaddress.ip_address(address), mode) == kept
    assert kept_address(None, mode) is None


def test_parse_networks_names_a_bad_entry():
    assert [str(n) for n in parse_networks([" 10.0.0.1 ", "10.0.0.0/8"])] == [
        "10.0.0.1/32",
        "10.0.0.0/8",
    ]
    with pytest.raises(ValueError, match="'proxy' is not an IP address or CIDR network"):
        parse_networks(["proxy"])
