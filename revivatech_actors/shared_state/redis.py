"""Redis access. redis-py's asyncio client does not run under trio, so the blocking client is
used from worker threads, one at a time per connection (a ``CapacityLimiter(1)``).

redis-py reconnects by itself on the next command after a lost connection, so a Redis that comes
back is picked up without a restart.

Every part that uses Redis (realtime figures, the live feed's changes, the funnel cache, the
health probe) goes through one :class:`RedisConnection`, whose :class:`RedisOutage` logs one
warning when Redis goes away and one line when it is back, however many calls fail meanwhile.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import TypeVar

import redis
import trio

from ..domain.health import ProbeResult

__all__ = ["RedisConnection", "RedisOutage"]

T = TypeVar("T")

logger = logging.getLogger(__name__)


class RedisOutage:
    """Whether Redis answered the last call, as every user of it reports (:meth:`failed`,
    :meth:`worked`). Logs a warning when it stops answering and one line when it answers again:
    one of each per outage. Thread-safe: the pub/sub listener reports from its own thread."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._since: float | None = None  # when the current outage began; None while Redis answers

    @property
    def away(self) -> bool:
        return self._since is not None

    def failed(self, exc: BaseException) -> None:
        with self._lock:
            if self._since is not None:
                return
            self._since = self._clock()
        logger.warning(
            "Redis unreachable (%s): realtime figures, live-feed updates from other instances, the "
            "funnel cache and rate limits are this instance's own until it is back",
            exc,
        )

    def worked(self) -> None:
        with self._lock:
            if self._since is None:
                return
            lasted, self._since = self._clock() - self._since, None
        logger.info(
            "Redis reachable again after %.1f s: realtime figures, live-feed updates, the funnel "
            "cache and rate limits are shared again",
            lasted,
        )


class RedisConnection:
    """One Redis client used from trio. ``url`` is a ``redis://``, ``rediss://`` or ``unix://``
    URL."""

    def __init__(
        self, url: str, *, timeout: float = 1.0, outage: RedisOutage | None = None
    ) -> None:
        self._client = redis.Redis.from_url(
            url, socket_connect_timeout=timeout, socket_timeout=timeout
        )
        self._limiter = trio.CapacityLimiter(1)
        self._timeout = timeout
        #: Reported to by every call and probe; users with connections of their own report to it
        #: too.
        self.outage = outage if outage is not None else RedisOutage()

    async def check(self) -> ProbeResult:
        """PING within the timeout. Never raises for an unreachable server."""
        started = time.perf_counter()
        try:
            with trio.fail_after(self._timeout + 0.5):
                await trio.to_thread.run_sync(
                    self._client.ping, limiter=self._limiter, abandon_on_cancel=True
                )
        except (redis.RedisError, OSError) as exc:
            self.outage.failed(exc)
            return ProbeResult(
                ok=False, error=f"{type(exc).__name__}: {exc}", checked_at=time.time()
            )
        except trio.TooSlowError:
            error = f"no answer within {self._timeout:g} s"
            self.outage.failed(TimeoutError(error))
            return ProbeResult(ok=False, error=error, checked_at=time.time())
        self.outage.worked()
        latency = (time.perf_counter() - started) * 1000
        return ProbeResult(ok=True, latency_ms=round(latency, 3), checked_at=time.time())

    async def call(self, fn: Callable[[redis.Redis], T]) -> T:
        """``fn(client)`` in a worker thread (batch several commands in one pipeline per call:
        each call costs a thread hop). Raises redis.RedisError / OSError; bounded by the timeout.
        The caller need not log such an error: :attr:`outage` does, once per outage."""
        try:
            result = await trio.to_thread.run_sync(
                fn, self._client, limiter=self._limiter, abandon_on_cancel=True
            )
        except (redis.RedisError, OSError) as exc:
            self.outage.failed(exc)
            raise
        self.outage.worked()
        return result

    def close(self) -> None:
        self._client.close()
