"""The storage actor: owns the database connection's lifetime and watches its health.

It opens the engine and applies pending migrations before it reports started (so every actor
started after it finds the schema in place), then pings the database every ``health_interval`` so
that a lost database shows up in the logs when it happens, not only when somebody asks. Health and
readiness checks read :meth:`StorageActor.recent_probe`: an answer at most that old.
"""

from __future__ import annotations

import logging
import time

import attrs
import trio

from ..domain.health import ProbeResult
from ..storage import Storage, StorageError
from ..supervisor import Activity

__all__ = ["StorageActor", "close_storages"]

logger = logging.getLogger(__name__)

#: Closing a connection is quick unless the network is gone; never let it hold up shutdown longer.
CLOSE_TIMEOUT = 2.0


async def close_storages(*storages: Storage) -> None:
    """Close ``storages`` when an actor ends, even one being cancelled, within ``CLOSE_TIMEOUT``
    seconds in all (a connection that does not close in time is left to its thread)."""
    with trio.move_on_after(CLOSE_TIMEOUT) as scope:
        scope.shield = True
        for storage in storages:
            await storage.close()


@attrs.define(eq=False)
class StorageActor:
    storage: Storage
    health_interval: float = 2.0
    activity: Activity = attrs.Factory(Activity)
    last_probe: ProbeResult = ProbeResult(ok=False, error="not checked yet")

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        await self.storage.open()
        try:
            await self.storage.migrate()  # the engine logs each migration it applies
            probe = await self.check()
            if not probe.ok:
                raise StorageError(f"database does not answer after opening: {probe.error}")
            logger.info("storage ready: %s", self.storage.url_for_display)
            task_status.started()
            while True:
                await trio.sleep(self.health_interval)
                await self.check()
        finally:
            await close_storages(self.storage)

    async def recent_probe(self) -> ProbeResult:
        """The last answer if it is at most ``health_interval`` old (the actor refreshes it that
        often), else a fresh :meth:`check`. Health endpoints use this: under load a ping's
        thread hop is what made them slow, and the answer is never staler than the interval."""
        last = self.last_probe
        if last.checked_at is not None and time.time() - last.checked_at <= self.health_interval:
            return last
        return await self.check()

    async def check(self) -> ProbeResult:
        """Ping the database now (bounded by the engine's ping timeout) and remember the answer.

        Logs a line when reachability changes. Never raises for an unreachable database.
        """
        started = time.perf_counter()
        try:
            await self.storage.ping()
        except StorageError as exc:
            probe = ProbeResult(ok=False, error=str(exc), checked_at=time.time())
        else:
            latency = (time.perf_counter() - started) * 1000
            probe = ProbeResult(ok=True, latency_ms=round(latency, 3), checked_at=time.time())
        if probe.ok != self.last_probe.ok and self.last_probe.checked_at is not None:
            if probe.ok:
                logger.warning("database reachable again")
            else:
                logger.error("database unreachable: %s", probe.error)
        self.last_probe = probe
        self.activity.record()
        return probe
