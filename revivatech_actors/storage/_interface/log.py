"""The event log, its partitions and their leases: who owns which visitors' derived state, and
which stored events it has not applied yet."""

from __future__ import annotations

import abc
import logging
import time
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, ClassVar

from ...domain.journeys import JOURNEY_STEP_TYPE
from ...domain.partitions import slot_of, target_share
from ...domain.profiles import Touch
from .._connections import StorageConnections
from .._errors import PartitionsMismatch
from .._records import LeaseRound, LogEntry, LogPage, PartitionPosition

__all__ = ["LOG_PAGE_EVENTS", "LogStorage"]

logger = logging.getLogger(__name__)

#: Of the log read by ``read_log``, at most this many events at a time (whole transactions: one
#: larger than that comes whole, alone).
LOG_PAGE_EVENTS = 20_000


def _ranges_between(low: int, high: int, skip: list[int]) -> list[tuple[int, int]]:
    """``[low, high)`` without the (sorted) transactions of ``skip``, as ordered ranges."""
    ranges = []
    start = low
    for txn in skip:
        if txn < start:
            continue
        if txn >= high:
            break
        if txn > start:
            ranges.append((start, txn))
        start = txn + 1
    if start < high:
        ranges.append((start, high))
    return ranges


class LogStorage(StorageConnections):
    """Partitions, leases and the log: ``ensure_partitions``, ``lease_round``, ``leave``,
    ``read_log``, ``announce_log``, ``wait_for_log``, and the hooks an engine supplies."""

    #: Whether processes can tell one another of stored events (``announce_log``,
    #: ``wait_for_log``).
    announces_log: ClassVar[bool] = False

    async def ensure_partitions(self, count: int) -> None:
        """Make the database hold ``count`` partitions: created at their first use (every
        position at the start of the log), grown to a multiple of the count held when no
        instance holds a lease (each new partition starts at its parent's position).

        Raises:
            PartitionsMismatch: any other change, or growing while an instance holds a lease.
        """
        await self._on_writer(lambda conn: self._ensure_partitions_blocking(conn, count))

    async def lease_round(
        self,
        owner: str,
        *,
        partitions: int,
        ttl: float,
        release: Sequence[int] = (),
        claim: bool = True,
    ) -> LeaseRound:
        """One round of partition ownership for ``owner``, in one transaction: mark it alive for
        ``ttl`` seconds, give up ``release``, renew the leases it holds for ``ttl`` seconds, and
        (with ``claim``) take unowned or expired partitions up to its share of the live instances
        (``domain.partitions.target_share``). Taking a partition raises its epoch, which fences
        off any write of its former owner. Times are the database's clock."""
        return await self._on_writer(
            lambda conn: self._lease_round_blocking(
                conn, owner, partitions, ttl, list(release), claim
            )
        )

    async def leave(self, owner: str) -> None:
        """Give up every partition of ``owner`` and its place among the live instances (at a stop:
        the others take its partitions at their next round, not after the leases expire)."""
        await self._on_writer(lambda conn: self._leave_blocking(conn, owner))

    async def read_log(
        self,
        cursors: Sequence[PartitionPosition],
        partitions: int,
        *,
        skip: Iterable[int] = (),
        limit: int = LOG_PAGE_EVENTS,
    ) -> LogPage:
        """The stored events of ``cursors``' partitions (of ``partitions``) that they do not cover,
        in log order, whole transactions only and about ``limit`` events at most; the page's
        ``horizon`` is where the cursors may move once its events are applied. Only transactions
        below the oldest one still in flight are read, so none that commits later is skipped.
        The transactions of ``skip`` are known to hold nothing the cursors lack: their events
        are not read at all (only the ranges between them are), which keeps a poll cheap when
        most of the log came through the fast path."""
        if not cursors:
            return LogPage([], 0)
        skipped = sorted(set(skip))
        return await self._on_writer(
            lambda conn: self._read_log_blocking(conn, list(cursors), partitions, limit, skipped)
        )

    async def announce_log(self) -> None:
        """Tell the other processes on this database that events were stored for partitions
        they may own (``wait_for_log``); a no-op on engines without announcements."""
        await self._on_writer(self._announce_log_blocking)

    async def wait_for_log(self, timeout: float) -> bool:
        """Wait at most ``timeout`` seconds for another process's ``announce_log``; True if one
        came. Uses this storage's connection for nothing else meanwhile: give it a storage of its
        own. Engines without announcements just wait and return False."""
        return await self._on_writer(lambda conn: self._wait_for_log_blocking(conn, timeout))

    def _announce_log_blocking(self, conn: Any) -> None:
        """Nothing to announce to: the default."""

    def _wait_for_log_blocking(self, conn: Any, timeout: float) -> bool:
        time.sleep(timeout)  # nobody announces anything here
        return False

    def _ensure_partitions_blocking(self, conn: Any, count: int) -> None:
        with self._transaction(conn):
            self._lock_partitions(conn)
            held = self._partition_count(conn)
            if held == count:
                return
            if held == 0:
                self._create_partitions(conn, range(count))
                return
            guide = 'docs/scaling.md, "Growing the partitions"'
            if count < held or count % held:
                msg = (
                    f"profiles.partitions is {count}, but the database holds {held} partitions: "
                    f"they can only grow, to a multiple of {held} ({guide})"
                )
                raise PartitionsMismatch(msg)
            if self._live_leases(conn):
                msg = (
                    f"profiles.partitions is {count}, the database holds {held}: growing them "
                    f"needs every instance stopped first ({guide})"
                )
                raise PartitionsMismatch(msg)
            self._split_partitions(conn, held, count)
            logger.warning("%s: profile partitions grown from %d to %d", self._where(), held, count)

    def _lease_round_blocking(
        self, conn: Any, owner: str, partitions: int, ttl: float, release: list[int], claim: bool
    ) -> LeaseRound:
        with self._transaction(conn):
            self._lease_heartbeat(conn, owner, ttl)
            if release:
                self._lease_release(conn, owner, release)
            owned = self._lease_renew(conn, owner, ttl)
            owners = self._live_owners(conn)
            want = target_share(partitions, owners) - len(owned) if claim else 0
            claimed = self._lease_claim(conn, owner, ttl, want) if want > 0 else []
        owned.update((c.partition, c.epoch) for c in claimed)
        return LeaseRound(owned, claimed, owners)

    def _read_log_blocking(
        self,
        conn: Any,
        cursors: list[PartitionPosition],
        partitions: int,
        limit: int,
        skip: list[int],
    ) -> LogPage:
        high = self._log_horizon(conn)  # first, in its own statement: see _log_horizon
        low = min(c.horizon for c in cursors)
        if low >= high:
            return LogPage([], high)
        ranges = _ranges_between(low, high, skip)
        entries = self._log_rows(conn, cursors, partitions, ranges, limit + 1)
        if len(entries) <= limit:
            return LogPage(entries, high)
        last = entries[-1].txn  # may be cut short: left for the next page
        if entries[0].txn == last:  # one transaction larger than a page comes whole, alone
            return LogPage(
                self._log_rows(conn, cursors, partitions, [(last, last + 1)], None),
                last + 1,
                more=True,
            )
        return LogPage([e for e in entries if e.txn != last], last, more=True)

    @abc.abstractmethod
    def _record_positions(
        self, conn: Any, owner: str | None, positions: Sequence[PartitionPosition]
    ) -> int:
        """Inside a transaction: write each partition's position and add one to its ``writes``
        where ``owner`` holds it with the given epoch and writes; return how many rows matched."""

    @abc.abstractmethod
    def _partition_rows(
        self, conn: Any, partitions: list[int]
    ) -> dict[int, tuple[str | None, int, int]]:
        """Each partition's (owner, epoch, writes)."""

    @abc.abstractmethod
    def _lock_partitions(self, conn: Any) -> None:
        """Inside a transaction: serialise changes to the set of partitions between processes."""

    @abc.abstractmethod
    def _partition_count(self, conn: Any) -> int: ...

    @abc.abstractmethod
    def _create_partitions(self, conn: Any, partitions: range) -> None:
        """Rows for ``partitions``, each at the start of the log."""

    @abc.abstractmethod
    def _split_partitions(self, conn: Any, held: int, count: int) -> None:
        """Rows for partitions ``held`` .. ``count - 1``, each at the position of ``q % held``."""

    @abc.abstractmethod
    def _live_leases(self, conn: Any) -> int: ...

    @abc.abstractmethod
    def _lease_heartbeat(self, conn: Any, owner: str, ttl: float) -> None: ...

    @abc.abstractmethod
    def _lease_release(self, conn: Any, owner: str, partitions: list[int]) -> None: ...

    @abc.abstractmethod
    def _lease_renew(self, conn: Any, owner: str, ttl: float) -> dict[int, int]:
        """Extend ``owner``'s leases; return its partitions with their epochs."""

    @abc.abstractmethod
    def _live_owners(self, conn: Any) -> int: ...

    @abc.abstractmethod
    def _lease_claim(self, conn: Any, owner: str, ttl: float, want: int) -> list[PartitionPosition]:
        """Take up to ``want`` partitions nobody holds (or whose lease expired), lowest first."""

    @abc.abstractmethod
    def _leave_blocking(self, conn: Any, owner: str) -> None: ...

    @abc.abstractmethod
    def _log_horizon(self, conn: Any) -> int:
        """A log transaction below which none is still in flight: every transaction with a
        smaller number has committed (and is visible to any later statement) or rolled back."""

    @abc.abstractmethod
    def _log_rows(
        self,
        conn: Any,
        cursors: list[PartitionPosition],
        partitions: int,
        ranges: list[tuple[int, int]],
        limit: int | None,
    ) -> list[LogEntry]:
        """The events with ``low <= log_txn < high`` for a ``(low, high)`` of ``ranges`` (ordered,
        disjoint) of the cursors' partitions that they do not cover, in log order (transaction,
        then the order they were handed over in), at most ``limit``."""

    def _visitor_tail(self, conn: Any, user_fingerprint: str, partition: int) -> list[Touch]:
        """Inside ``_read_snapshot``: the visitor's events that its partition's position does not
        cover, in log order (none before the partitions exist: nobody has written anything)."""
        position = conn.execute(self._log_queries["partition_position"], (partition,)).fetchone()
        if position is None:
            return []
        params = {
            "horizon": position[0],
            "applied": position[1],
            "slot": slot_of(user_fingerprint),
            "fp": user_fingerprint,
            "partitions": 1,
            "step": JOURNEY_STEP_TYPE,
        }
        rows = conn.execute(self._log_queries["visitor_tail"], params).fetchall()
        return [self._log_entry(row).touch for row in rows]

    #: The engine's named queries (``partition_position`` and ``visitor_tail`` are read here).
    _log_queries: ClassVar[Mapping[str, str]]

    @staticmethod
    @abc.abstractmethod
    def _log_entry(row: tuple[Any, ...]) -> LogEntry:
        """A row of the engine's log queries, decoded."""
