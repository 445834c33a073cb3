"""Rate limits as token buckets: the written form of a rate, the bucket maths and what a refusal
says. Pure: no I/O and no clock of its own (every call takes ``now``, in seconds).

A rate ``N/<int>(s|m|h)``, e.g. ``"600/1m"``, is a bucket of ``N`` tokens, full at first, that
refills continuously at ``N`` tokens per period. A request takes one token; with none left it is
refused until one has refilled. So a client may burst ``N`` requests at once, and in any span of
``T`` seconds it gets at most ``N + N * T / period``.
"""

from __future__ import annotations

import ipaddress
import math
import re

import attrs

__all__ = [
    "Decision",
    "Rate",
    "TokenBucket",
    "address_key",
    "decision",
    "lease_chunk",
    "parse_rate",
    "rate_problem",
]

#: "N/<int>(s|m|h)": a count, a slash, a whole number of seconds, minutes or hours.
_RATE = re.compile(r"([0-9]+)/([0-9]+)([smh])")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600}
#: Bounds that keep the maths meaningful: more than a billion requests per period is no limit,
#: and a period over a day would let one burst lock a client out for longer than that.
MAX_COUNT = 1_000_000_000
MAX_PERIOD_SECONDS = 86_400
#: A process sharing a limit through Redis takes this share of the bucket at a time (at least 1
#: token, at most MAX_CHUNK), so it asks Redis once per that many requests of one client.
CHUNK_SHARE = 1 / 20
MAX_CHUNK = 1000
#: An IPv6 client is limited by its /64: one subscriber commonly holds a whole /64, so a limit
#: per address would let it take a fresh address (and a full bucket) for each request.
IPV6_CLIENT_PREFIX = 64
#: The key of clients whose address is unknown (a Unix socket): they share one bucket.
UNKNOWN_CLIENT = "unknown"


@attrs.frozen
class Rate:
    """``count`` requests per ``seconds``; ``text`` is how it was written."""

    count: int
    seconds: int
    text: str

    @property
    def per_second(self) -> float:
        return self.count / self.seconds


def rate_problem(text: str) -> str | None:
    """Why ``text`` is not a rate, or None; ``""`` (no limit) is not a rate either."""
    match = _RATE.fullmatch(text.strip())
    if match is None:
        return f'a rate is written N/<int>(s|m|h), e.g. "600/1m" or "100/15m", got {text!r}'
    count, amount, unit = int(match[1]), int(match[2]), match[3]
    if not 1 <= count <= MAX_COUNT:
        return f"the count of a rate is 1 to {MAX_COUNT}, got {text!r}"
    if not 1 <= amount * _UNIT_SECONDS[unit] <= MAX_PERIOD_SECONDS:
        return f"the period of a rate is 1 s to 24h, got {text!r}"
    return None


def parse_rate(text: str) -> Rate:
    """``"600/1m"`` -> ``Rate(600, 60, "600/1m")``. Raises ValueError saying what is wrong."""
    problem = rate_problem(text)
    if problem is not None:
        raise ValueError(problem)
    match = _RATE.fullmatch(text.strip())
    assert match is not None  # rate_problem matched the same
    return Rate(int(match[1]), int(match[2]) * _UNIT_SECONDS[match[3]], text.strip())


@attrs.frozen
class Decision:
    """The verdict on one request, with what the ``RateLimit-*`` headers say.

    ``remaining`` is whole tokens left, ``reset`` the seconds until the bucket is full again,
    ``retry_after`` the seconds until the next token (0 when allowed).
    """

    allowed: bool
    limit: int
    remaining: int
    reset: float
    retry_after: float


class TokenBucket:
    """One client's bucket for ``rate``, full at creation. Mutable state, updated in place by
    :meth:`take` (one per request: a slotted object costs less than a new value each time)."""

    __slots__ = ("capacity", "per_second", "tokens", "updated")

    def __init__(self, rate: Rate, now: float) -> None:
        self.capacity = float(rate.count)
        self.per_second = rate.per_second
        self.tokens = self.capacity
        self.updated = now

    def refill(self, now: float) -> float:
        """The tokens at ``now`` (a clock going back refills nothing)."""
        if now > self.updated:
            self.tokens = min(self.capacity, self.tokens + (now - self.updated) * self.per_second)
            self.updated = now
        return self.tokens

    def is_full(self, now: float) -> bool:
        return self.refill(now) >= self.capacity

    def take(self, now: float) -> Decision:
        """Take one token if there is one: allowed; else refused, and nothing is taken."""
        tokens = self.refill(now)
        allowed = tokens >= 1
        if allowed:
            tokens = self.tokens = tokens - 1
        return decision(allowed, self.capacity, tokens, self.per_second)


def decision(allowed: bool, capacity: float, tokens: float, per_second: float) -> Decision:
    """The decision for a bucket of ``capacity`` holding ``tokens`` after the request."""
    return Decision(
        allowed=allowed,
        limit=int(capacity),
        remaining=max(0, math.floor(tokens)),
        reset=max(0.0, (capacity - tokens) / per_second),
        retry_after=0.0 if allowed else max(0.0, (1 - tokens) / per_second),
    )


def lease_chunk(rate: Rate) -> int:
    """Tokens a process takes from the shared bucket at a time: 1/20 of the bucket, 1 to 1000."""
    return max(1, min(MAX_CHUNK, math.floor(rate.count * CHUNK_SHARE)))


def address_key(address: ipaddress.IPv4Address | ipaddress.IPv6Address | None) -> str:
    """The limit's key of a client address: the IPv4 address, or the IPv6 address's /64."""
    if address is None:
        return UNKNOWN_CLIENT
    if address.version == 4:
        return str(address)
    return str(ipaddress.ip_network(f"{address}/{IPV6_CLIENT_PREFIX}", strict=False))
