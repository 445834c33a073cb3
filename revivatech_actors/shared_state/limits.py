"""Rate limiters: token buckets per client, in this process or shared through Redis.

:class:`LocalLimiter` keeps one :class:`~revivatech_actors.domain.rates.TokenBucket` per key in
memory. :class:`SharedLimiter` shares each key's bucket between every instance and worker through
Redis without a Redis round trip per request: a process *leases* a chunk of tokens from the
shared bucket (a Lua script refills it by Redis' own clock and grants up to the chunk, atomically)
and spends them locally; it asks again when the chunk is spent, so one request in a chunk waits
for Redis (the others of that key wait for the same answer, never a second one). A refusal is
remembered until the next token is due, so a client hammering a refused key costs no Redis calls.

Precision, with ``N`` processes and chunk ``c`` (``domain.rates.lease_chunk``: 1/20 of the
bucket, at most 1000): leased tokens are taken from the shared bucket before they are spent, so
at any moment at most ``N * c`` tokens are out; a client can go over its rate by at most that
(tokens leased before a window, spent in it), and can be refused early by at most that (tokens
another process holds for it). A lease is dropped unspent after a quarter of the rate's period,
so a process never keeps a client's tokens from the others for long.

Redis away (an error or no answer within ``redis.ping_timeout``) never fails a request: the key
is judged by the :class:`LocalLimiter` of this process instead, and Redis is tried again after
``REDIS_RETRY_SECONDS``. While it is away each process allows the full rate on its own.
"""

from __future__ import annotations

import collections
import logging
import math
import time
from collections.abc import Callable
from typing import Protocol

import attrs
import redis
import trio
from redis.commands.core import Script

from ..domain.rates import Decision, Rate, TokenBucket, decision, lease_chunk, parse_rate
from .redis import RedisConnection

__all__ = ["LEASE_SCRIPT", "Limiter", "LocalLimiter", "RateLimits", "SharedLimiter"]

logger = logging.getLogger(__name__)

#: Most keys (clients) whose buckets one limiter keeps; past it the least recently used goes,
#: which forgets only what it owed (it is treated as full again the next time it comes).
MAX_KEYS = 100_000
#: Seconds after a Redis failure before Redis is asked again (meanwhile: in-process buckets).
REDIS_RETRY_SECONDS = 2.0
#: A lease not spent within this share of the rate's period is dropped (see the module docstring).
LEASE_SHARE_OF_PERIOD = 0.25

#: Refill the bucket at KEYS[1] by Redis' clock and grant up to ARGV[3] tokens.
#: ARGV: capacity, tokens per second, tokens wanted, expiry in ms (by then it is full again, and
#: a missing bucket is a full one). Returns {tokens granted, tokens left as a string}.
LEASE_SCRIPT = """
local now = redis.call('TIME')
now = tonumber(now[1]) + tonumber(now[2]) / 1000000
local capacity = tonumber(ARGV[1])
local rate = tonumber(ARGV[2])
local state = redis.call('HMGET', KEYS[1], 'tokens', 'at')
local tokens = tonumber(state[1])
local at = tonumber(state[2])
if tokens == nil or at == nil then
  tokens = capacity
  at = now
end
if now > at then
  tokens = math.min(capacity, tokens + (now - at) * rate)
end
local granted = math.min(tonumber(ARGV[3]), math.floor(tokens))
tokens = tokens - granted
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'at', tostring(now))
redis.call('PEXPIRE', KEYS[1], ARGV[4])
return {granted, tostring(tokens)}
"""


class Limiter(Protocol):
    rate: Rate

    async def take(self, key: str) -> Decision: ...


class LocalLimiter:
    """Buckets of ``rate`` per key, in this process. ``clock`` gives seconds (monotonic)."""

    def __init__(
        self, rate: Rate, *, clock: Callable[[], float] = time.monotonic, max_keys: int = MAX_KEYS
    ) -> None:
        self.rate = rate
        self._clock = clock
        self._max_keys = max_keys
        self._buckets: collections.OrderedDict[str, TokenBucket] = collections.OrderedDict()

    def __len__(self) -> int:
        return len(self._buckets)

    def take_now(self, key: str) -> Decision:
        now = self._clock()
        bucket = self._buckets.get(key)
        if bucket is None:
            bucket = self._buckets[key] = TokenBucket(self.rate, now)
            if len(self._buckets) > self._max_keys:
                self._buckets.popitem(last=False)
        else:
            self._buckets.move_to_end(key)
        return bucket.take(now)

    async def take(self, key: str) -> Decision:
        return self.take_now(key)


class _Lease:
    """Tokens of one key leased from Redis: ``tokens`` to spend here until ``expires``;
    ``shared`` is what the shared bucket held after the grant (for the headers); a refusal
    holds until ``refused_until``."""

    __slots__ = ("expires", "granted_at", "refused_until", "shared", "tokens")

    def __init__(self) -> None:
        self.tokens = 0
        self.shared = 0.0
        self.granted_at = self.expires = self.refused_until = -math.inf


class SharedLimiter:
    """Buckets of ``rate`` per key shared through Redis under ``prefix`` (see the module
    docstring); ``fallback`` judges while Redis is away. Every wait for Redis is bounded by
    ``timeout`` seconds."""

    def __init__(
        self,
        rate: Rate,
        connection: RedisConnection,
        prefix: str,
        *,
        fallback: LocalLimiter,
        timeout: float,
        clock: Callable[[], float] = time.monotonic,
        max_keys: int = MAX_KEYS,
    ) -> None:
        self.rate = rate
        self._connection = connection
        self._prefix = prefix
        self._fallback = fallback
        self._timeout = timeout
        self._clock = clock
        self._max_keys = max_keys
        self._chunk = lease_chunk(rate)
        self._lease_seconds = rate.seconds * LEASE_SHARE_OF_PERIOD
        self._expiry_ms = str(math.ceil(rate.seconds * 1000) + 1000)
        self._leases: collections.OrderedDict[str, _Lease] = collections.OrderedDict()
        self._pending: dict[str, trio.Event] = {}  # keys whose lease is being asked for
        self._away_until = -math.inf
        self._script: Script | None = None

    def _lease(self, key: str) -> _Lease:
        lease = self._leases.get(key)
        if lease is None:
            lease = self._leases[key] = _Lease()
            if len(self._leases) > self._max_keys:
                self._leases.popitem(last=False)
        else:
            self._leases.move_to_end(key)
        return lease

    def _spend(self, lease: _Lease, now: float) -> Decision | None:
        """The decision from what is held here, or None when Redis must be asked."""
        if now < lease.refused_until:
            return decision(
                False,
                self.rate.count,
                lease.shared + (now - lease.granted_at) * self.rate.per_second,
                self.rate.per_second,
            )
        if lease.tokens > 0 and now < lease.expires:
            lease.tokens -= 1
            held = lease.tokens + lease.shared + (now - lease.granted_at) * self.rate.per_second
            return decision(True, self.rate.count, min(held, self.rate.count), self.rate.per_second)
        return None

    async def take(self, key: str) -> Decision:
        while True:
            now = self._clock()
            if now < self._away_until:
                return self._fallback.take_now(key)
            lease = self._lease(key)
            judged = self._spend(lease, now)
            if judged is not None:
                return judged
            pending = self._pending.get(key)
            if pending is None:
                break
            await pending.wait()  # another request of this key is asking Redis: use its answer
        done = self._pending[key] = trio.Event()
        try:
            granted = await self._ask(key)
        finally:
            del self._pending[key]
            done.set()
        if granted is None:
            return self._fallback.take_now(key)
        count, shared = granted
        now = self._clock()
        lease.granted_at, lease.shared = now, shared
        lease.expires = now + self._lease_seconds
        if count == 0:
            lease.tokens = 0
            lease.refused_until = now + (1 - shared) / self.rate.per_second
            return decision(False, self.rate.count, shared, self.rate.per_second)
        lease.tokens = count - 1
        return decision(
            True, self.rate.count, min(lease.tokens + shared, self.rate.count), self.rate.per_second
        )

    async def _ask(self, key: str) -> tuple[int, float] | None:
        """(tokens granted, tokens left in the shared bucket), or None when Redis is away."""
        name = self._prefix + key
        args = (self.rate.count, repr(self.rate.per_second), self._chunk, self._expiry_ms)

        def lease(client: redis.Redis) -> list:
            if self._script is None:
                self._script = client.register_script(LEASE_SCRIPT)
            return self._script(keys=[name], args=args, client=client)

        with trio.move_on_after(self._timeout) as scope:
            try:
                granted, left = await self._connection.call(lease)
                return int(granted), float(left)
            except (
                redis.RedisError,
                OSError,
            ) as exc:  # the connection's outage logs it, once per outage
                logger.debug("rate limits in Redis unavailable: %s", exc)
        if scope.cancelled_caught:
            self._connection.outage.failed(TimeoutError(f"no answer within {self._timeout:g} s"))
        self._away_until = self._clock() + REDIS_RETRY_SECONDS
        return None


@attrs.frozen
class RateLimits:
    """The service's limiters, each None when its rate is empty (no limit): ``admin`` per admin
    credential, ``ingest`` and ``ws_connect`` per client address."""

    admin: Limiter | None = None
    ingest: Limiter | None = None
    ws_connect: Limiter | None = None

    @classmethod
    def build(
        cls,
        *,
        admin: str,
        ingest: str,
        ws_connect: str,
        connection: RedisConnection | None = None,
        prefix: str = "",
        timeout: float = 1.0,
    ) -> RateLimits:
        """Limiters for the rates as written (``""``: none); shared through ``connection`` (keys
        ``{prefix}{admin|ingest|ws}:{client}``) when given, else in this process."""

        def limiter(text: str, name: str) -> Limiter | None:
            if not text:
                return None
            rate = parse_rate(text)
            local = LocalLimiter(rate)
            if connection is None:
                return local
            return SharedLimiter(
                rate, connection, f"{prefix}{name}:", fallback=local, timeout=timeout
            )

        return cls(
            admin=limiter(admin, "admin"),
            ingest=limiter(ingest, "ingest"),
            ws_connect=limiter(ws_connect, "ws"),
        )
