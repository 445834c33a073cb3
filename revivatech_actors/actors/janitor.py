"""The janitor actor: the data lifecycle. It deletes old rows (retention) and erases visitors.

Retention. With ``retention.days`` above 0, every ``interval`` seconds (the first pass
``min(interval, FIRST_PASS_DELAY)`` after the start) it deletes, table by table
(``domain.retention.PURGED_TABLES``), the rows older than ``days`` days, ``batch_size`` at a
time, each batch a short transaction of its own (``Storage.purge_step``), resting after each
so that it keeps storage busy at most ``max_share`` of the time: event commits, and so ingest's
acknowledgements, never wait long behind it. Events are deleted only once every partition's
position is past them, so the exactly-once derivation of profiles, sessions and journeys never
misses or double counts one; profiles and visitor days are never deleted: they keep their totals.
With ``days`` at 0 (the default) it deletes nothing.

Erasure (``erase``): every row of one visitor, in every table keyed by visitor, with its
partition fenced (``Storage.erase_visitor``); then ``on_erased`` tells the local profiles actor,
which drops what it holds of that partition in memory. An owner on another instance finds the
fence at its next lease round or write and does the same; either replays the partition from its
stored position, where the visitor's events are gone.

Storage is its own (``storage``): its deletes never queue behind event writes on the batcher's
connection.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import attrs
import trio

from ..domain.partitions import partition_of
from ..domain.retention import PURGED_TABLES, cutoff_of, pause_after
from ..domain.timefmt import iso_datetime, iso_utc
from ..storage import RejectedLetter, Storage, StorageError
from ..supervisor import Activity
from .storage import close_storages

__all__ = ["JanitorActor", "JanitorStats"]

logger = logging.getLogger(__name__)

#: Longest wait after a start before the first pass: a restart's replay and catch-up go first,
#: and a service restarted more often than ``interval`` still purges.
FIRST_PASS_DELAY = 60.0


def _zeros() -> dict[str, int]:
    return dict.fromkeys(PURGED_TABLES, 0)


@attrs.define
class JanitorStats:
    """Counters for operators (``GET /api/analytics/actors``, ``stats.janitor``)."""

    passes: int = 0
    batches: int = 0
    deleted: dict[str, int] = attrs.Factory(_zeros)  # since the start, per table
    last_pass_deleted: dict[str, int] = attrs.Factory(_zeros)
    last_pass_at: float | None = None  # wall clock of the last pass's start
    last_pass_seconds: float = 0.0
    last_cutoff: datetime | None = None
    failures: int = 0
    last_error: str | None = None
    erasures: int = 0


@attrs.define(eq=False)
class JanitorActor:
    """See the module docstring. ``partitions`` is ``profiles.partitions`` (an erased visitor's
    partition is fenced); ``now`` is the wall clock (tests pass another)."""

    storage: Storage
    days: int = 0
    interval: float = 3600.0
    batch_size: int = 2000
    max_share: float = 0.1
    partitions: int = 64
    on_erased: Callable[[str, int], None] | None = None
    now: Callable[[], datetime] = attrs.field(default=lambda: datetime.now(UTC))
    activity: Activity = attrs.Factory(Activity)
    stats: JanitorStats = attrs.Factory(JanitorStats)
    _stopping: bool = attrs.field(init=False, default=False)
    _purging: bool = attrs.field(init=False, default=False)
    _sleep: trio.CancelScope | None = attrs.field(init=False, default=None)

    def stats_json(self) -> dict[str, Any]:
        s = self.stats
        return {
            "enabled": self.days > 0,
            "days": self.days,
            "interval": self.interval,
            "batchSize": self.batch_size,
            "purging": self._purging,
            "passes": s.passes,
            "batches": s.batches,
            "deleted": dict(s.deleted),
            "lastPassDeleted": dict(s.last_pass_deleted),
            "lastPassAt": iso_utc(s.last_pass_at),
            "lastPassSeconds": round(s.last_pass_seconds, 3),
            "lastCutoff": None if s.last_cutoff is None else iso_datetime(s.last_cutoff),
            "failures": s.failures,
            "lastError": s.last_error,
            "erasures": s.erasures,
        }

    def request_stop(self) -> None:
        """Stop after the batch in progress, cutting a rest short (the rest of the pass waits for
        the next start)."""
        self._stopping = True
        if self._sleep is not None:
            self._sleep.cancel()

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        self._stopping = False
        await self.storage.open()
        try:
            task_status.started()
            delay = min(self.interval, FIRST_PASS_DELAY)
            while not self._stopping:
                await self._rest(delay)
                delay = self.interval
                if self.days and not self._stopping:
                    await self.purge_pass()
        finally:
            await close_storages(self.storage)

    async def _rest(self, seconds: float) -> None:
        """Sleep ``seconds``, or until ``request_stop``."""
        with trio.CancelScope(deadline=trio.current_time() + seconds) as self._sleep:
            await trio.sleep_forever()
        self._sleep = None

    async def purge_pass(self) -> dict[str, int]:
        """Delete what is older than ``days`` days from every purged table, batch by batch, paced;
        return the rows deleted per table. A storage error ends the pass (logged, counted): the
        next one starts over, as every batch is a transaction of its own."""
        cutoff = cutoff_of(self.now(), self.days)
        deleted = _zeros()
        if cutoff is None:
            return deleted
        s = self.stats
        s.last_pass_at, s.last_cutoff = time.time(), cutoff
        began = time.perf_counter()
        self._purging = True
        try:
            for table in PURGED_TABLES:
                resume = None
                while not self._stopping:
                    batch_began = time.perf_counter()
                    step = await self.storage.purge_step(
                        table, cutoff, limit=self.batch_size, resume=resume
                    )
                    took = time.perf_counter() - batch_began
                    deleted[table] += step.deleted
                    s.deleted[table] += step.deleted
                    s.batches += 1
                    self.activity.record()
                    if step.resume is None:
                        break
                    resume = step.resume
                    await self._rest(pause_after(took, self.max_share))
        except StorageError as exc:
            s.failures += 1
            s.last_error = str(exc)
            logger.warning(
                "retention pass stopped by a storage error, the next starts in %g s: %s",
                self.interval,
                exc,
            )
        finally:
            self._purging = False
            s.passes += 1
            s.last_pass_deleted = deleted
            s.last_pass_seconds = time.perf_counter() - began
        if any(deleted.values()):
            logger.info(
                "retention: deleted rows older than %s: %s",
                iso_datetime(cutoff),
                ", ".join(f"{table} {n}" for table, n in deleted.items() if n),
            )
        return deleted

    async def erase(self, user_fingerprint: str) -> dict[str, int]:
        """Erase the visitor (see the module docstring); the rows removed per table, zeros for
        an unknown visitor.

        Raises:
            StorageError: the database could not do it (nothing or part of it was done: a new
                call finishes the job).
        """
        partition = partition_of(user_fingerprint, self.partitions)
        removed = await self.storage.erase_visitor(user_fingerprint, partition)
        self.stats.erasures += 1
        self.activity.record()
        if self.on_erased is not None:
            self.on_erased(user_fingerprint, partition)
        logger.info(
            "erased a visitor of partition %d: %s",
            partition,
            ", ".join(f"{table} {n}" for table, n in removed.items()),
        )
        return removed

    async def dead_letters(self, limit: int, before: int | None = None) -> list[RejectedLetter]:
        """Up to ``limit`` dead letters, newest first, with ids below ``before`` when given."""
        return await self.storage.rejected_page(limit, before)
