"""Redis access. redis-py's asyncio client does not run under trio, so the blocking client is
used from worker threads, one at a time per connection (a ``CapacityLimiter(1)``).

redis-py reconnects by itself on the next command after a lost connection, so a Redis that comes
back is picked up without a restart.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

import redis
import trio

from ..domain.health import ProbeResult

__all__ = ["RedisConnection"]

T = TypeVar("T")


class RedisConnection:
    """One Redis client used from trio. ``url`` is a ``redis://``, ``rediss://`` or ``unix://`` URL."""

    def __init__(self, url: str, *, timeout: float = 1.0) -> None:
        self._client = redis.Redis.from_url(url, socket_connect_timeout=timeout, socket_timeout=timeout)
        self._limiter = trio.CapacityLimiter(1)
        self._timeout = timeout

    async def check(self) -> ProbeResult:
        """PING within the timeout. Never raises for an unreachable server."""
        started = time.perf_counter()
        try:
            with trio.fail_after(self._timeout + 0.5):
                await trio.to_thread.run_sync(self._client.ping, limiter=self._limiter, abandon_on_cancel=True)
        except (redis.RedisError, OSError) as exc:
            return ProbeResult(ok=False, error=f"{type(exc).__name__}: {exc}", checked_at=time.time())
        except trio.TooSlowError:
            return ProbeResult(ok=False, error=f"no answer within {self._timeout:g} s", checked_at=time.time())
        latency = (time.perf_counter() - started) * 1000
        return ProbeResult(ok=True, latency_ms=round(latency, 3), checked_at=time.time())

    async def call(self, fn: Callable[[redis.Redis], T]) -> T:
        """``fn(client)`` in a worker thread (batch several commands in one pipeline per call:
        each call costs a thread hop). Raises redis.RedisError / OSError; bounded by the timeout."""
        return await trio.to_thread.run_sync(fn, self._client, limiter=self._limiter, abandon_on_cancel=True)

    def close(self) -> None:
        self._client.close()
