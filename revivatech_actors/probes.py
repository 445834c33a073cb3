"""The running service's health and readiness: probes of the database and Redis, and the state
of the actor tree, judged by :mod:`.domain.health`."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable

import attrs
import trio

from . import __version__
from .actors.loop_monitor import LoopMonitor
from .actors.storage import StorageActor
from .domain.health import HealthReport, ProbeResult, Readiness, assess_health, assess_readiness
from .shared_state.redis import RedisConnection
from .supervisor import ActorStatus

__all__ = ["HealthChecks", "HealthSnapshot"]


@attrs.frozen
class HealthSnapshot:
    report: HealthReport
    database: ProbeResult
    redis: ProbeResult | None
    loop_lag_ms: float | None
    uptime_seconds: float
    checked_at: float
    version: str
    storage_engine: str


@attrs.frozen(eq=False)
class HealthChecks:
    """Health and readiness of one service. ``tree`` is its actor tree's status now;
    ``started_at`` (epoch seconds) is when it was built."""

    storage_actor: StorageActor
    loop_monitor: LoopMonitor
    redis: RedisConnection | None
    tree: Callable[[], ActorStatus]
    started_at: float
    storage_engine: str

    async def _probe_all(self) -> tuple[ProbeResult, ProbeResult | None]:
        results: dict[str, ProbeResult] = {}

        async def probe(key: str, check: Callable[[], Awaitable[ProbeResult]]) -> None:
            results[key] = await check()

        async with trio.open_nursery() as nursery:
            nursery.start_soon(probe, "database", self.storage_actor.recent_probe)
            if self.redis is not None:
                nursery.start_soon(probe, "redis", self.redis.check)
        return results["database"], results.get("redis")

    async def health(self) -> HealthSnapshot:
        """Probes of the database (at most ``storage.health_interval`` old) and Redis (fresh),
        concurrently and each bounded, plus the tree."""
        database, redis = await self._probe_all()
        lag = self.loop_monitor.lag_ms
        report = assess_health(database=database, redis=redis, tree=self.tree(), loop_lag_ms=lag)
        now = time.time()
        return HealthSnapshot(
            report=report,
            database=database,
            redis=redis,
            loop_lag_ms=lag,
            uptime_seconds=now - self.started_at,
            checked_at=now,
            version=__version__,
            storage_engine=self.storage_engine,
        )

    async def readiness(self) -> Readiness:
        database = await self.storage_actor.recent_probe()
        return assess_readiness(database=database, tree=self.tree())

    async def is_ready(self) -> bool:
        return (await self.readiness()).ready
