"""The storage interface: what the service asks of its database, whatever the engine.

An engine (``sqlite.py``, ``postgres.py``) subclasses ``Storage`` and supplies small *blocking*
hooks; the public methods here run them on the writer's connection in a worker thread
(``_connections``), and hold what both engines share (idempotent batches, fenced profile
writes, lease rounds, log pages, the erasure's two transactions).
"""

from __future__ import annotations

import abc
import datetime
import logging
import time
from collections.abc import Iterable, Mapping, Sequence
from importlib.resources.abc import Traversable
from typing import Any, ClassVar

import attrs

from ..domain.funnel import FunnelQuery, FunnelStep
from ..domain.partitions import partition_of, target_share
from ..domain.profiles import ProfileDelta, ProfileState, Touch
from ..domain.retention import ERASED_TABLES, PURGED_TABLES
from ..domain.scoring import ScoreRecord
from ..messages import DeadLetter, Event, Outcome
from ._connections import DEFAULT_CONNECT_TIMEOUT, DEFAULT_PING_TIMEOUT, WRITER, Lane
from ._errors import LeaseLost, PartitionsMismatch
from ._lifecycle import PurgeStep, RejectedLetter, fingerprint_needles
from ._migrate import MigratingStorage
from ._records import (
    LeaseRound,
    LogEntry,
    LogPage,
    PartitionPosition,
    RealtimeSeed,
    StoredJourney,
    StoredPrediction,
    VisitorKeys,
    VisitorView,
)
from ._refused import outcomes_of, write_bisecting
from ._reports import BookingEvent, DailyRevenue, ProfilesPage, VisitorCounts

__all__ = ["LOG_PAGE_EVENTS", "CommittedBatch", "Storage"]

logger = logging.getLogger(__name__)

#: Of the log read by ``read_log``, at most this many events at a time (whole transactions: one
#: larger than that comes whole, alone).
LOG_PAGE_EVENTS = 20_000


@attrs.frozen
class CommittedBatch:
    """What ``commit_batch`` did: one outcome per event, and the log transaction that stored the
    events reported STORED, or None when none was (or, rarely, when a batch the database partly
    refused took several transactions: its events then reach the profiles through the log)."""

    outcomes: list[Outcome]
    log_txn: int | None


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


class _Fenced(Exception):
    """Rolls back a write of derived state whose partitions moved on (see LeaseLost)."""


class Storage(MigratingStorage):
    """Where the service keeps its data: one interface, one implementation per engine.

    Create it with ``open_storage(url)``, then ``await open()`` (or ``async with``). All methods
    are trio-friendly: blocking driver calls run in worker threads, one thread per connection at
    a time. Errors are ``StorageError`` subclasses with one-line messages that never show a
    password.
    """

    #: "sqlite" or "postgresql".
    engine: ClassVar[str]
    #: Whether writes from several instances (connections) to this engine run at once rather
    #: than waiting for one another; the profiles actor's last write at a stop uses a second one.
    parallel_writes: ClassVar[bool] = False
    #: Whether processes can tell one another of stored events (``announce_log``,
    #: ``wait_for_log``).
    announces_log: ClassVar[bool] = False
    #: Errors meaning "the database refuses these rows" (not "the database is unreachable"):
    #: ``write_batch`` bisects a batch that raises one of them.
    _row_errors: ClassVar[tuple[type[Exception], ...]]
    #: The engine's named queries (``_queries.load_queries``).
    _queries: ClassVar[Mapping[str, str]]

    def __init__(
        self,
        url: str,
        *,
        connect_timeout: float = DEFAULT_CONNECT_TIMEOUT,
        ping_timeout: float = DEFAULT_PING_TIMEOUT,
        migrations_dir: Traversable | None = None,
    ) -> None:
        """Do not connect yet; see ``open()``.

        Args:
            url: the database URL (see ``open_storage``).
            connect_timeout: seconds ``open()`` (and a reconnect) may take.
            ping_timeout: seconds ``ping()`` and ``table_names()`` may take.
            migrations_dir: a folder of ``NNNN_name.sql`` files to use instead of the migrations
                shipped for this engine (tests, tools).

        Raises:
            ValueError: a timeout is not positive.
        """
        super().__init__(url, connect_timeout=connect_timeout, ping_timeout=ping_timeout)
        self._migrations_dir = migrations_dir

    # ----------------------------------------------------------------------------- public API

    async def commit_batch(
        self, events: Sequence[Event], dead_letters: Sequence[DeadLetter] = ()
    ) -> CommittedBatch:
        """Store ``events`` and ``dead_letters``; return one outcome per event, in order, and the
        log transaction of the stored ones (``CommittedBatch``).

        Guarantees:
            * idempotent on ``event_id``: an event whose id is already stored (or appears earlier
              in the same batch) is not stored again and comes back ``DUPLICATE``;
            * every event reported ``STORED`` or ``DUPLICATE`` is committed, together with
              ``dead_letters`` (and nothing else: session rows come with the profile writes);
            * a row the database refuses (an encoding or constraint error) does not sink the
              batch: the batch is bisected until the refusing rows are isolated, those come back
              ``REJECTED`` with the database's reason and are committed as dead letters
              (source ``database``), and the rest is committed;
            * on StorageUnavailable nothing is known: the transaction may or may not have
              committed. Calling again with the same events is safe (see idempotency); ids the
              first attempt stored then come back ``DUPLICATE``.

        Raises:
            StorageUnavailable: the database cannot be reached or the storage is not open.
            StorageError: a failure that is not about particular rows.
        """
        if not events and not dead_letters:
            return CommittedBatch([], None)
        lane = self._open_lane(WRITER)
        if not dead_letters:
            stored = await self._store_on_loop(lane, events)
            if stored is not None:
                inserted, txn = stored
                return CommittedBatch(
                    outcomes_of(events, range(len(events)), inserted), txn if inserted else None
                )
        outcomes, log_txn = await self._call(
            lane, lambda conn: write_bisecting(self, conn, events, dead_letters), abandon=False
        )
        return CommittedBatch(outcomes, log_txn)

    async def write_batch(
        self, events: Sequence[Event], dead_letters: Sequence[DeadLetter] = ()
    ) -> list[Outcome]:
        """``commit_batch``'s outcomes alone."""
        return (await self.commit_batch(events, dead_letters)).outcomes

    async def received_times(self, event_ids: Sequence[str]) -> dict[str, datetime.datetime]:
        """``received_at`` of each of ``event_ids`` that is stored (absent ids are left out).

        Raises:
            StorageUnavailable: the database cannot be reached or the storage is not open.
        """
        if not event_ids:
            return {}
        lane = self._open_lane(WRITER)
        return await self._call(
            lane, lambda conn: self._received_times_blocking(conn, list(event_ids)), abandon=False
        )

    async def apply_profile_deltas(
        self,
        deltas: Sequence[ProfileDelta],
        *,
        max_touchpoints: int = 500,
        return_rows: bool = True,
        positions: Sequence[PartitionPosition] = (),
        owner: str | None = None,
    ) -> dict[str, ProfileState]:
        """Add ``deltas`` (one per visitor) to their profiles, journeys and sessions
        (``analytics_sessions``, as ``domain.sessions`` defines the deltas) in one transaction and
        return each visitor's whole stored profile afterwards (nothing with ``return_rows=False``:
        reading the rows back costs about a fifth of the write).

        With ``positions`` (the partitions of every visitor of ``deltas``, written by their
        ``owner``), the same transaction records each partition's log position, and is applied
        only if ``owner`` still holds every one of them with the ``epoch`` and ``writes`` given:
        derived state and the position it reflects never part. A call whose earlier attempt
        committed (its reply was lost) finds ``writes`` moved on by one, applies nothing again and
        returns ``{}``.

        Guarantees: commutative (counters are added, times take the least / greatest, days and
        sessions are rows counted once whichever writer brings them, touchpoints are appended and
        a session's stage only rises). A session stops taking touchpoints once it holds
        ``max_touchpoints`` (its counts and stage still change).

        Raises:
            LeaseLost: another owner holds some of the partitions now; nothing was applied.
            StorageUnavailable: the database cannot be reached (nothing or everything applied:
                the transaction is atomic; without ``positions`` a retry after a lost commit
                reply would add twice).
        """
        if not deltas and not positions:
            return {}
        lane = self._open_lane(WRITER)
        return await self._call(
            lane,
            lambda conn: self._apply_profile_deltas_blocking(
                conn, deltas, max_touchpoints, return_rows, positions, owner
            ),
            abandon=False,
        )

    # ------------------------------------------------------------------- the log and its partitions

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

    async def visitor_view(self, user_fingerprint: str, partition: int) -> VisitorView:
        """The visitor's stored rows and the log events they do not reflect yet (of its
        ``partition``), in one snapshot (see ``VisitorView``)."""
        return await self._on_writer(
            lambda conn: self._visitor_view_blocking(conn, user_fingerprint, partition)
        )

    async def load_profiles(self, user_fingerprints: Sequence[str]) -> dict[str, ProfileState]:
        """The stored profiles of ``user_fingerprints`` (visitors without one are left out)."""
        if not user_fingerprints:
            return {}
        return await self._on_writer(
            lambda conn: self._load_profiles_blocking(conn, list(user_fingerprints))
        )

    async def visitor_keys(self, user_fingerprint: str) -> VisitorKeys:
        """The sessions and days storage counts for ``user_fingerprint``."""
        return await self._on_writer(
            lambda conn: self._visitor_keys_blocking(conn, user_fingerprint)
        )

    async def record_scores(self, records: Sequence[ScoreRecord]) -> None:
        """In one transaction: a ``ml_predictions`` row per recorded score, and each visitor's
        segment, recorded score values, ``scored_at`` and ``scored_version`` on its profile. A
        result older than the one stored (of an earlier version of the profile, or of the same one
        scored earlier) changes nothing; of several for one visitor, only the newest counts."""
        newest: dict[str, ScoreRecord] = {}
        for record in records:
            kept = newest.get(record.user_fingerprint)
            if kept is None or (record.version, record.scored_at) >= (kept.version, kept.scored_at):
                newest[record.user_fingerprint] = record
        if not newest:
            return
        records = list(newest.values())
        await self._on_writer(lambda conn: self._record_scores_blocking(conn, records))

    async def profiles_to_rescore(
        self, scored_before: datetime.datetime, limit: int
    ) -> list[ProfileState]:
        """Up to ``limit`` profiles never scored or last scored before ``scored_before``, the
        longest-waiting first."""
        return await self._on_writer(
            lambda conn: self._profiles_to_rescore_blocking(conn, scored_before, limit)
        )

    async def unscored_profiles(self, partitions: Iterable[int], count: int) -> list[str]:
        """The visitors of ``partitions`` (of ``count``) whose stored profile was written since
        its scores were last recorded (``version > scored_version``, migration 0008): what a
        process that died between a profile write and the scorer's record left unscored.
        Reads the whole profiles table (the columns are not indexed, so profile writes stay
        heap-only updates): meant for when partitions change hands, not for every cycle."""
        wanted = frozenset(partitions)
        query = self._queries["unscored_profiles"]
        rows = await self._on_writer(lambda conn: conn.execute(query).fetchall())
        return [fp for (fp,) in rows if partition_of(fp, count) in wanted]

    async def recent_predictions(self, user_fingerprint: str, limit: int) -> list[StoredPrediction]:
        """Each model's latest ``limit`` predictions of the visitor, all newest first."""
        return await self._on_writer(
            lambda conn: self._recent_predictions_blocking(conn, user_fingerprint, limit)
        )

    async def load_journeys(self, user_fingerprint: str) -> list[StoredJourney]:
        """The visitor's journeys (one per session) in order of start."""
        return await self._on_writer(
            lambda conn: self._load_journeys_blocking(conn, user_fingerprint)
        )

    async def realtime_seed(
        self,
        since: datetime.datetime,
        *,
        page_types: Iterable[str],
        conversion_types: Iterable[str],
    ) -> RealtimeSeed:
        """The events stamped at or after ``since`` (the realtime window), counted per bucket:
        all events, page views (``page_types``) and conversions (``conversion_types``), page
        views per page URL, and each visitor's and session's newest bucket. Uses the
        event-time index; costs one row per bucket, page, visitor and session of the window."""
        pages, conversions = sorted(page_types), sorted(conversion_types)
        return await self._on_writer(
            lambda conn: self._realtime_seed_blocking(conn, since, pages, conversions)
        )

    async def funnel(self, query: FunnelQuery, *, timeout: float) -> list[FunnelStep]:
        """Count ``query``'s funnel (``domain.funnel`` defines who reaches each step): one
        :class:`FunnelStep` per step, in order. One statement, values passed as parameters; its
        cost grows with the events of the steps' types in the range, not with their square.

        Raises:
            QueryTimeout: the database spent ``timeout`` seconds on it and cancelled it (the
                call's thread is not left running).
        """
        return await self._on_writer(lambda conn: self._funnel_blocking(conn, query, timeout))

    # ------------------------------------------------------- admin reports (reads, no request text)

    async def profiles_page(self, offset: int, limit: int) -> ProfilesPage:
        """``limit`` stored profiles from the ``offset``-th, by latest activity (``last_seen``)
        newest first (then by fingerprint), and the number of profiles. Profiles have no index
        on ``last_seen`` (it would rule out HOT updates, migration 0003): the read scans them."""
        return await self._on_writer(lambda conn: self._profiles_page_blocking(conn, offset, limit))

    async def top_profiles(self, since: datetime.datetime, limit: int) -> list[ProfileState]:
        """Up to ``limit`` profiles last seen at or after ``since``, by the engagement score last
        recorded (highest first; never scored last), then latest activity, then fingerprint."""
        return await self._on_writer(lambda conn: self._top_profiles_blocking(conn, since, limit))

    async def visitor_counts(self, since: datetime.datetime) -> VisitorCounts:
        """Visitors last seen at or after ``since``, and of them those first seen at or after it."""
        return await self._on_writer(lambda conn: self._visitor_counts_blocking(conn, since))

    async def revenue_by_day(
        self, since: datetime.datetime, until: datetime.datetime, types: Iterable[str]
    ) -> list[DailyRevenue]:
        """Events of ``types`` (completed bookings) stamped in ``[since, until)``, per UTC day in
        order: the sum of their values (none: 0) and their number. Uses the type-time index."""
        kinds = sorted(types)
        return await self._on_writer(
            lambda conn: self._revenue_by_day_blocking(conn, since, until, kinds)
        )

    async def booking_events(
        self, since: datetime.datetime, until: datetime.datetime, types: Iterable[str], limit: int
    ) -> list[BookingEvent]:
        """Events of ``types`` stamped in ``[since, until)``, in time order (then event id): the
        latest ``limit`` of them when there are more. Uses the type-time index."""
        kinds = sorted(types)
        return await self._on_writer(
            lambda conn: self._booking_events_blocking(conn, since, until, kinds, limit)
        )

    # ------------------------------------------------------------------------ the data lifecycle

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

    @abc.abstractmethod
    def _store_events(self, conn: Any, events: Sequence[Event]) -> set[str]:
        """Inside a transaction: insert ``events`` in order, skipping ids already stored (and
        repeats within ``events``), and return the ids actually inserted. Raise one of
        ``_row_errors`` when the database refuses a row. Nothing else is written with them:
        sessions, profiles and journeys come with the profile writes (``apply_profile_deltas``)."""

    @abc.abstractmethod
    def _log_txn(self, conn: Any) -> int:
        """Inside the transaction that just stored events (``_store_events``): its log
        transaction."""

    async def _store_on_loop(
        self, lane: Lane, events: Sequence[Event]
    ) -> tuple[set[str], int] | None:
        """Store ``events`` as ``_store_in_one_statement`` does, from the event loop itself
        (non-blocking I/O, no worker thread), and return the ids inserted with the log
        transaction; or None (the default)
        to leave the batch to the worker thread, which also isolates rows the database refuses.
        An engine that can, does so only while it holds ``lane`` (``_claim_lane``)."""
        return None

    def _store_in_one_statement(
        self, conn: Any, events: Sequence[Event]
    ) -> tuple[set[str], int] | None:
        """Outside any transaction: store ``events`` as ``_store_events`` does, in one atomic
        statement, and return the ids inserted with its log transaction; or None (the default)
        to have ``_store_events`` run inside a transaction instead. Called only for a batch
        without dead letters; one statement saves the round trips of BEGIN, COPY and COMMIT."""
        return None

    @abc.abstractmethod
    def _received_times_blocking(
        self, conn: Any, event_ids: list[str]
    ) -> dict[str, datetime.datetime]: ...

    def _apply_profile_deltas_blocking(
        self,
        conn: Any,
        deltas: Sequence[ProfileDelta],
        max_touchpoints: int,
        return_rows: bool,
        positions: Sequence[PartitionPosition],
        owner: str | None,
    ) -> dict[str, ProfileState]:
        try:
            with self._transaction(conn):
                # the partition rows first: a takeover waits for this write, or this write sees it
                if positions and self._record_positions(conn, owner, positions) < len(positions):
                    raise _Fenced
                return (
                    self._upsert_profiles(conn, deltas, max_touchpoints, return_rows)
                    if deltas
                    else {}
                )
        except _Fenced:
            pass
        rows = self._partition_rows(conn, [p.partition for p in positions])
        if all(rows.get(p.partition) == (owner, p.epoch, p.writes + 1) for p in positions):
            return {}  # an earlier attempt committed: its reply was lost
        lost = frozenset(
            p.partition
            for p in positions
            if rows.get(p.partition, (None, None, None))[:2] != (owner, p.epoch)
        )
        msg = f"{self._where()}: partition(s) {sorted(lost)} are owned by another instance now"
        raise LeaseLost(msg, lost)

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

    def _visitor_view_blocking(
        self, conn: Any, user_fingerprint: str, partition: int
    ) -> VisitorView:
        with self._read_snapshot(conn):  # the rows and the position they reflect, written together
            profiles = self._load_profiles_blocking(conn, [user_fingerprint])
            keys = self._visitor_keys_blocking(conn, user_fingerprint)
            journeys = self._load_journeys_blocking(conn, user_fingerprint)
            tail = self._visitor_tail(conn, user_fingerprint, partition)
        return VisitorView(profiles.get(user_fingerprint), keys, journeys, tail)

    @abc.abstractmethod
    def _visitor_tail(self, conn: Any, user_fingerprint: str, partition: int) -> list[Touch]:
        """Inside ``_read_snapshot``: the visitor's events that its partition's position does not
        cover, in log order (none before the partitions exist: nobody has written anything)."""

    @abc.abstractmethod
    def _upsert_profiles(
        self, conn: Any, deltas: Sequence[ProfileDelta], max_touchpoints: int, return_rows: bool
    ) -> dict[str, ProfileState]:
        """Inside a transaction: what ``apply_profile_deltas`` promises."""

    @abc.abstractmethod
    def _load_profiles_blocking(
        self, conn: Any, user_fingerprints: list[str]
    ) -> dict[str, ProfileState]: ...

    @abc.abstractmethod
    def _visitor_keys_blocking(self, conn: Any, user_fingerprint: str) -> VisitorKeys: ...

    def _record_scores_blocking(self, conn: Any, records: Sequence[ScoreRecord]) -> None:
        with self._transaction(conn):
            self._record_scores(conn, records)

    @abc.abstractmethod
    def _record_scores(self, conn: Any, records: Sequence[ScoreRecord]) -> None:
        """Inside a transaction: what ``record_scores`` promises."""

    @abc.abstractmethod
    def _profiles_to_rescore_blocking(
        self, conn: Any, scored_before: datetime.datetime, limit: int
    ) -> list[ProfileState]: ...

    @abc.abstractmethod
    def _recent_predictions_blocking(
        self, conn: Any, user_fingerprint: str, limit: int
    ) -> list[StoredPrediction]: ...

    @abc.abstractmethod
    def _load_journeys_blocking(self, conn: Any, user_fingerprint: str) -> list[StoredJourney]: ...

    @abc.abstractmethod
    def _funnel_blocking(
        self, conn: Any, query: FunnelQuery, timeout: float
    ) -> list[FunnelStep]: ...

    @abc.abstractmethod
    def _profiles_page_blocking(self, conn: Any, offset: int, limit: int) -> ProfilesPage: ...

    @abc.abstractmethod
    def _top_profiles_blocking(
        self, conn: Any, since: datetime.datetime, limit: int
    ) -> list[ProfileState]: ...

    @abc.abstractmethod
    def _visitor_counts_blocking(self, conn: Any, since: datetime.datetime) -> VisitorCounts: ...

    @abc.abstractmethod
    def _revenue_by_day_blocking(
        self, conn: Any, since: datetime.datetime, until: datetime.datetime, types: list[str]
    ) -> list[DailyRevenue]: ...

    @abc.abstractmethod
    def _booking_events_blocking(
        self,
        conn: Any,
        since: datetime.datetime,
        until: datetime.datetime,
        types: list[str],
        limit: int,
    ) -> list[BookingEvent]: ...

    @abc.abstractmethod
    def _realtime_seed_blocking(
        self,
        conn: Any,
        since: datetime.datetime,
        page_types: list[str],
        conversion_types: list[str],
    ) -> RealtimeSeed: ...

    @abc.abstractmethod
    def _insert_dead_letters(self, conn: Any, letters: Sequence[DeadLetter]) -> None:
        """Inside a transaction: append ``letters`` to ``rejected_events``."""
