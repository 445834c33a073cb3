"""The data lifecycle: the retention janitor's purges, a visitor's erasure, and the listing of
dead letters."""

from __future__ import annotations

import abc
import datetime
from typing import Any

from ...domain.retention import ERASED_TABLES, PURGED_TABLES
from .._lifecycle import PurgeStep, RejectedLetter, fingerprint_needles
from .log import LogStorage

__all__ = ["LifecycleStorage"]


class LifecycleStorage(LogStorage):
    """``purge_step``, ``erase_visitor``, ``rejected_page``, and the hooks an engine supplies
    for them (erasing fences a partition, so it builds on the log)."""

    async def purge_step(
        self, table: str, cutoff: datetime.datetime, *, limit: int, resume: Any = None
    ) -> PurgeStep:
        """One batch of the retention janitor, in one short transaction: delete from ``table`` (one
        of ``domain.retention.PURGED_TABLES``) rows older than ``cutoff``, at most ``limit``.

        - ``analytics_events``: stamped before ``cutoff`` *and* below the horizon of their
          partition (or stored before the log existed): events a replay could still need are
          never deleted, so derived state stays exactly once. None while no partition exists.
        - ``analytics_sessions``, ``customer_journeys``: these have no index on their time (it would
          rule out heap-only updates of the rows profile writes touch most), so a batch looks at the
          next ``limit`` rows by primary key after ``resume`` and deletes those last active before
          ``cutoff``. A deleted session's time is added to its profile's
          ``retired_session_seconds`` in the same transaction: the profile keeps its totals.
        - ``ml_predictions``, ``rejected_events``: through their time index.

        The step's ``resume`` is None when the table holds nothing more to delete."""
        if table not in PURGED_TABLES:
            msg = f"not a purged table: {table!r}"
            raise ValueError(msg)
        if limit < 1:
            msg = f"limit must be >= 1, got {limit}"
            raise ValueError(msg)
        return await self._on_writer(
            lambda conn: self._purge_step_blocking(conn, table, cutoff, limit, resume)
        )

    async def erase_visitor(self, user_fingerprint: str, partition: int) -> dict[str, int]:
        """Delete every row of the visitor from every table keyed by visitor; return how many
        rows of each of ``domain.retention.ERASED_TABLES`` went (zeros for an unknown visitor).

        Two transactions. The first deletes the visitor's events (a scan of the events table:
        it has no index by visitor, so ingest stays cheaper) and the dead letters naming it,
        noting first the log transaction below which every event write has ended. The second
        raises the epoch of the visitor's ``partition`` — a *fence*: its owner, on whichever
        instance, can no longer write the deltas it holds in memory (``LeaseLost``; it drops
        the partition and replays it from the stored position, where the visitor's events are
        gone) — and deletes the visitor's derived rows, its predictions and the events stored
        since the first transaction began. Events stored after the second commits are new data."""
        needles = fingerprint_needles(user_fingerprint)

        def erase(conn: Any) -> dict[str, int]:
            with self._transaction(conn):
                bound = self._log_horizon(conn)
                counts = self._erase_events(conn, user_fingerprint, None)
                counts["rejected_events"] = self._erase_letters(conn, needles)
            with self._transaction(conn):
                self._fence_partition(conn, partition)
                derived = self._erase_derived(conn, user_fingerprint)
                late = self._erase_events(conn, user_fingerprint, bound)
            counts.update(derived)
            counts["analytics_events"] += late["analytics_events"]
            return {table: counts.get(table, 0) for table in ERASED_TABLES}

        return await self._on_writer(erase)

    async def rejected_page(self, limit: int, before: int | None = None) -> list[RejectedLetter]:
        """Up to ``limit`` dead letters, newest first (by id), with ids below ``before`` when
        given."""
        return await self._on_writer(lambda conn: self._rejected_page_blocking(conn, limit, before))

    @abc.abstractmethod
    def _purge_step_blocking(
        self, conn: Any, table: str, cutoff: datetime.datetime, limit: int, resume: Any
    ) -> PurgeStep: ...

    @abc.abstractmethod
    def _erase_events(
        self, conn: Any, user_fingerprint: str, since_txn: int | None
    ) -> dict[str, int]:
        """Inside a transaction: delete the visitor's events (only those of log transactions from
        ``since_txn`` on, through the log index, when given); ``{"analytics_events": n}``."""

    @abc.abstractmethod
    def _erase_letters(self, conn: Any, needles: tuple[str, str]) -> int:
        """Inside a transaction: delete the dead letters whose payload holds one of ``needles``."""

    @abc.abstractmethod
    def _fence_partition(self, conn: Any, partition: int) -> None:
        """Inside a transaction: raise the partition's epoch (waiting for a write of it in
        flight)."""

    @abc.abstractmethod
    def _erase_derived(self, conn: Any, user_fingerprint: str) -> dict[str, int]:
        """Inside a transaction: delete the visitor's profile, predictions, sessions, journeys and
        days, so that no score record in flight brings a profile or a prediction back."""

    @abc.abstractmethod
    def _rejected_page_blocking(
        self, conn: Any, limit: int, before: int | None
    ) -> list[RejectedLetter]: ...
