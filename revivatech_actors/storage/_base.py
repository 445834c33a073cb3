"""The storage interface and the code every engine shares.

An engine (``sqlite.py``, ``postgres.py``) subclasses ``Storage`` and supplies small *blocking*
hooks (connect, run a script, read ``schema_migrations``...). This module runs them in worker
threads and owns everything else: connection lifecycle, timeouts, reconnection, error translation
and the migration loop.

Threads and connections: a ``_Lane`` is one connection plus a ``trio.CapacityLimiter(1)``, so at
most one worker thread touches a connection at a time. Each storage has a *writer* lane (all writes
and migrations) and a *health* lane (ping, catalog reads), so a health check never waits behind a
long write. Health calls are bounded by ``ping_timeout`` and abandon their thread when it expires;
the abandoned lane is retired (its thread closes the connection once it returns) and the next call
opens a fresh one, so a hung network never blocks a caller and never poisons later calls.
"""

from __future__ import annotations

import abc
import contextlib
import datetime
import json
import uuid
import logging
import threading
import time
import urllib.parse
from collections.abc import Callable, Iterable, Sequence
from importlib.resources.abc import Traversable
from typing import Any, ClassVar, TypeVar

import attrs
import trio

from ..domain.funnel import FunnelQuery, FunnelStep
from ..domain.partitions import partition_of, target_share
from ..domain.profiles import ProfileDelta, ProfileState, Touch
from ..domain.retention import ERASED_TABLES, PURGED_TABLES
from ..domain.scoring import ScoreRecord
from ..messages import DUPLICATE, STORED, DeadLetter, Event, Outcome, Status
from ._errors import LeaseLost, MigrationError, PartitionsMismatch, StorageError, StorageUnavailable
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
from ._lifecycle import PurgeStep, RejectedLetter, fingerprint_needles
from ._reports import BookingEvent, DailyRevenue, ProfilesPage, VisitorCounts
from .migrations import (
    AppliedMigration,
    Migration,
    discover_migrations,
    load_migrations,
    plan_migrations,
)

logger = logging.getLogger(__name__)

T = TypeVar("T")

#: Seconds to wait for a connection in ``open()``. Long enough for a database across a network
#: (TLS handshake included), short enough that a wrong host fails the start visibly.
DEFAULT_CONNECT_TIMEOUT = 5.0
#: Seconds a health check may take. Health endpoints are polled often; a database that needs more
#: than a second to answer ``SELECT 1`` is, for its callers, unavailable.
DEFAULT_PING_TIMEOUT = 1.0

_WRITER = "writer"
_HEALTH = "health"

#: Profiles whose scores do not reflect their latest write (the same in both engines).
_UNSCORED_PROFILES = "SELECT user_fingerprint FROM user_behavior_profiles WHERE version > scored_version"

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


@attrs.define(eq=False)
class _Lane:
    """A connection and the limiter that lets one worker thread at a time use it.

    ``busy`` and ``retired`` are guarded by ``lock``. While ``busy`` only the worker thread touches
    ``conn``; otherwise only the trio side does. Whoever sees ``retired`` last closes ``conn``.
    """

    purpose: str
    limiter: trio.CapacityLimiter = attrs.field(factory=lambda: trio.CapacityLimiter(1))
    conn: Any = None
    busy: bool = False
    retired: bool = False
    lock: threading.Lock = attrs.field(factory=threading.Lock)

    def __repr__(self) -> str:
        state = "retired" if self.retired else "busy" if self.busy else "idle"
        return f"<_Lane {self.purpose} {state} connected={self.conn is not None}>"


def outcomes_of(events: Sequence[Event], indices: Iterable[int], inserted: set[str]) -> list[Outcome]:
    """The outcome of each of ``events[i]`` for ``i`` in ``indices``, given the ids a store
    inserted: STORED for the first of them with an inserted id, DUPLICATE for the rest (stored
    before, or repeated within the batch)."""
    outcomes = []
    first: set[str] = set()
    for i in indices:
        event_id = events[i].event_id
        if event_id in inserted and event_id not in first:
            first.add(event_id)
            outcomes.append(STORED)
        else:
            outcomes.append(DUPLICATE)
    return outcomes


def mask_password(url: str) -> str:
    """``url`` with the password (userinfo or ``password=`` query parameter) replaced by ``***``.

    Everything else is left exactly as written.
    """
    parts = urllib.parse.urlsplit(url)
    masked = url
    userinfo, at, hosts = parts.netloc.rpartition("@")
    if at and ":" in userinfo:
        netloc = f"{userinfo.split(':', 1)[0]}:***@{hosts}"
        masked = masked.replace(f"//{parts.netloc}", f"//{netloc}", 1)
    if parts.query:
        pairs = urllib.parse.parse_qsl(parts.query, keep_blank_values=True)
        if any(key == "password" for key, _ in pairs):
            query = "&".join(
                f"{key}=***" if key == "password" else f"{urllib.parse.quote(key)}={urllib.parse.quote(value)}"
                for key, value in pairs
            )
            masked = masked.replace(f"?{parts.query}", f"?{query}", 1)
    return masked


def first_line(exc: BaseException) -> str:
    """The first non-empty line of an exception's message (driver messages span several)."""
    for line in str(exc).splitlines():
        if line.strip():
            return line.strip()
    return type(exc).__name__


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


def _nothing(conn: Any) -> None:
    """A call that only makes sure the lane is connected."""


class Storage(abc.ABC):
    """Where the service keeps its data: one interface, one implementation per engine.

    Create it with ``open_storage(url)``, then ``await open()`` (or ``async with``). All methods
    are trio-friendly: blocking driver calls run in worker threads, one thread per connection at a
    time. Errors are ``StorageError`` subclasses with one-line messages that never show a password.
    """

    #: "sqlite" or "postgresql".
    engine: ClassVar[str]
    #: Folder of migrations under ``revivatech_actors._sql``.
    migrations_folder: ClassVar[str]
    #: Whether writes from several instances (connections) to this engine run at once rather
    #: than waiting for one another; the profiles actor's last write at a stop uses a second one.
    parallel_writes: ClassVar[bool] = False
    #: Whether processes can tell one another of stored events (``announce_log``, ``wait_for_log``).
    announces_log: ClassVar[bool] = False
    #: Exceptions of the driver, translated to StorageError by ``_translate_error``.
    _driver_errors: ClassVar[tuple[type[Exception], ...]]
    #: Errors meaning "the database refuses these rows" (not "the database is unreachable"):
    #: ``write_batch`` bisects a batch that raises one of them.
    _row_errors: ClassVar[tuple[type[Exception], ...]]

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
        if not connect_timeout > 0:
            msg = f"connect_timeout must be positive, got {connect_timeout!r}"
            raise ValueError(msg)
        if not ping_timeout > 0:
            msg = f"ping_timeout must be positive, got {ping_timeout!r}"
            raise ValueError(msg)
        self._url = url
        self._connect_timeout = float(connect_timeout)
        self._ping_timeout = float(ping_timeout)
        self._migrations_dir = migrations_dir
        self._state = "new"  # new -> open -> closed (open() again is allowed after close)
        self._writer: _Lane | None = None
        self._health: _Lane | None = None

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.url_for_display} {self._state}>"

    # ----------------------------------------------------------------------------- public API

    @property
    def url_for_display(self) -> str:
        """The URL with any password masked: safe for logs, health output and error messages."""
        return mask_password(self._url)

    @property
    def is_open(self) -> bool:
        return self._state == "open"

    @property
    def connect_timeout(self) -> float:
        return self._connect_timeout

    @property
    def ping_timeout(self) -> float:
        return self._ping_timeout

    async def __aenter__(self) -> Storage:
        await self.open()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def open(self) -> None:
        """Connect the writer and the health connection. Does nothing if already open.

        Guarantees: returns or raises within ``connect_timeout`` seconds, even when the host
        swallows packets; on failure nothing stays connected.

        Raises:
            StorageUnavailable: the database cannot be reached, with a one-line message naming
                where it was looked for (host:port, or the file).
        """
        if self._state == "open":
            return
        writer, health = _Lane(_WRITER), _Lane(_HEALTH)
        try:
            with trio.fail_after(self._connect_timeout):
                await self._call(writer, _nothing, abandon=True)
                await self._call(health, _nothing, abandon=True)
        except trio.TooSlowError:
            await self._retire(writer)
            await self._retire(health)
            msg = f"{self._where()}: no connection within {self._connect_timeout:g} s"
            raise StorageUnavailable(msg) from None
        except BaseException:
            await self._retire(writer)
            await self._retire(health)
            raise
        self._writer, self._health = writer, health
        self._state = "open"
        # Debug: every actor opens its own Storage; `serve` logs one line per start instead.
        logger.debug("storage open: %s", self.url_for_display)

    async def close(self) -> None:
        """Close both connections. Idempotent; later calls (except ``open``) raise StorageUnavailable.

        A call still running in a worker thread finishes first; its thread then closes the
        connection it used.
        """
        if self._state != "open":
            self._state = "closed"
            return
        self._state = "closed"
        writer, health = self._writer, self._health
        self._writer = self._health = None
        for lane in (health, writer):
            if lane is not None:
                await self._retire(lane)
        logger.debug("storage closed: %s", self.url_for_display)

    async def ping(self) -> None:
        """Check that the database answers, on the health connection (never behind the writer).

        Guarantees: returns or raises within ``ping_timeout`` seconds; a lost or hung health
        connection is replaced, so the next ping reconnects.

        Raises:
            StorageUnavailable: no answer in time, an error, or the storage is not open.
        """
        await self._call_health(self._ping_blocking, "ping")

    async def table_names(self) -> set[str]:
        """The names of the tables in the database (the current schema on PostgreSQL).

        Answered on the health connection within ``ping_timeout``, like ``ping``.

        Raises:
            StorageUnavailable: as ``ping``.
        """
        return await self._call_health(self._table_names_blocking, "table_names")

    async def applied_migrations(self) -> list[AppliedMigration]:
        """The rows of ``schema_migrations`` in version order (empty before the first migrate).

        Raises:
            StorageUnavailable: the database cannot be reached or the storage is not open.
            StorageError: the query failed.
        """
        return await self._call(self._open_lane(_WRITER), self._read_applied, abandon=False)

    async def migrate(self) -> list[AppliedMigration]:
        """Apply the pending migrations, in order, and return those applied by this call.

        Guarantees: each migration runs in its own transaction together with its
        ``schema_migrations`` row, so it is applied completely or not at all. Several processes
        may migrate one database at once: each transaction first takes an exclusive migration lock
        (an advisory lock on PostgreSQL, ``BEGIN IMMEDIATE`` on SQLite) and only then reads what is
        applied, so every migration is applied exactly once. Cancelling stops between migrations.

        Raises:
            MigrationError: the files are inconsistent, an applied file was edited (the message
                names it), or a migration failed (named; its transaction was rolled back).
            StorageUnavailable: the database cannot be reached or the storage is not open.
        """
        lane = self._open_lane(_WRITER)
        available = self._available_migrations()
        applied_now: list[AppliedMigration] = []
        while True:
            # One worker-thread hop per migration: lock, read the applied set, apply the first
            # pending one, commit. Re-reading each time is what makes concurrent runs safe.
            row = await self._call(
                lane, lambda conn: self._migrate_one_blocking(conn, available), abandon=False
            )
            if row is None:
                return applied_now
            # Debug: `migrate` prints each one and `serve` logs them in its start line.
            logger.debug("applied migration %s to %s", row.filename, self.url_for_display)
            applied_now.append(row)

    async def commit_batch(self, events: Sequence[Event], dead_letters: Sequence[DeadLetter] = ()) -> CommittedBatch:
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
        lane = self._open_lane(_WRITER)
        if not dead_letters:
            stored = await self._store_on_loop(lane, events)
            if stored is not None:
                inserted, txn = stored
                return CommittedBatch(outcomes_of(events, range(len(events)), inserted), txn if inserted else None)
        return await self._call(lane, lambda conn: self._write_batch_blocking(conn, events, dead_letters), abandon=False)

    async def write_batch(self, events: Sequence[Event], dead_letters: Sequence[DeadLetter] = ()) -> list[Outcome]:
        """``commit_batch``'s outcomes alone."""
        return (await self.commit_batch(events, dead_letters)).outcomes

    async def received_times(self, event_ids: Sequence[str]) -> dict[str, datetime.datetime]:
        """``received_at`` of each of ``event_ids`` that is stored (absent ids are left out).

        Raises:
            StorageUnavailable: the database cannot be reached or the storage is not open.
        """
        if not event_ids:
            return {}
        lane = self._open_lane(_WRITER)
        return await self._call(lane, lambda conn: self._received_times_blocking(conn, list(event_ids)), abandon=False)

    async def apply_profile_deltas(self, deltas: Sequence[ProfileDelta], *, max_touchpoints: int = 500,
                                   return_rows: bool = True, positions: Sequence[PartitionPosition] = (),
                                   owner: str | None = None) -> dict[str, ProfileState]:
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
        lane = self._open_lane(_WRITER)
        return await self._call(
            lane, lambda conn: self._apply_profile_deltas_blocking(conn, deltas, max_touchpoints, return_rows,
                                                                   positions, owner),
            abandon=False
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

    async def lease_round(self, owner: str, *, partitions: int, ttl: float, release: Sequence[int] = (),
                          claim: bool = True) -> LeaseRound:
        """One round of partition ownership for ``owner``, in one transaction: mark it alive for
        ``ttl`` seconds, give up ``release``, renew the leases it holds for ``ttl`` seconds, and
        (with ``claim``) take unowned or expired partitions up to its share of the live instances
        (``domain.partitions.target_share``). Taking a partition raises its epoch, which fences
        off any write of its former owner. Times are the database's clock."""
        return await self._on_writer(
            lambda conn: self._lease_round_blocking(conn, owner, partitions, ttl, list(release), claim))

    async def leave(self, owner: str) -> None:
        """Give up every partition of ``owner`` and its place among the live instances (at a stop:
        the others take its partitions at their next round, not after the leases expire)."""
        await self._on_writer(lambda conn: self._leave_blocking(conn, owner))

    async def read_log(self, cursors: Sequence[PartitionPosition], partitions: int, *,
                       skip: Iterable[int] = (), limit: int = LOG_PAGE_EVENTS) -> LogPage:
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
            lambda conn: self._read_log_blocking(conn, list(cursors), partitions, limit, skipped))

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
        return await self._on_writer(lambda conn: self._visitor_view_blocking(conn, user_fingerprint, partition))

    async def load_profiles(self, user_fingerprints: Sequence[str]) -> dict[str, ProfileState]:
        """The stored profiles of ``user_fingerprints`` (visitors without one are left out)."""
        if not user_fingerprints:
            return {}
        return await self._on_writer(lambda conn: self._load_profiles_blocking(conn, list(user_fingerprints)))

    async def visitor_keys(self, user_fingerprint: str) -> VisitorKeys:
        """The sessions and days storage counts for ``user_fingerprint``."""
        return await self._on_writer(lambda conn: self._visitor_keys_blocking(conn, user_fingerprint))

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

    async def profiles_to_rescore(self, scored_before: datetime.datetime, limit: int) -> list[ProfileState]:
        """Up to ``limit`` profiles never scored or last scored before ``scored_before``, the
        longest-waiting first."""
        return await self._on_writer(lambda conn: self._profiles_to_rescore_blocking(conn, scored_before, limit))

    async def unscored_profiles(self, partitions: Iterable[int], count: int) -> list[str]:
        """The visitors of ``partitions`` (of ``count``) whose stored profile was written since
        its scores were last recorded (``version > scored_version``, migration 0008): what a
        process that died between a profile write and the scorer's record left unscored.
        Reads the whole profiles table (the columns are not indexed, so profile writes stay
        heap-only updates): meant for when partitions change hands, not for every cycle."""
        wanted = frozenset(partitions)
        rows = await self._on_writer(lambda conn: conn.execute(_UNSCORED_PROFILES).fetchall())
        return [fp for (fp,) in rows if partition_of(fp, count) in wanted]

    async def recent_predictions(self, user_fingerprint: str, limit: int) -> list[StoredPrediction]:
        """Each model's latest ``limit`` predictions of the visitor, all newest first."""
        return await self._on_writer(lambda conn: self._recent_predictions_blocking(conn, user_fingerprint, limit))

    async def load_journeys(self, user_fingerprint: str) -> list[StoredJourney]:
        """The visitor's journeys (one per session) in order of start."""
        return await self._on_writer(lambda conn: self._load_journeys_blocking(conn, user_fingerprint))

    async def realtime_seed(self, since: datetime.datetime, *, page_types: Iterable[str],
                            conversion_types: Iterable[str]) -> RealtimeSeed:
        """The events stamped at or after ``since`` (the realtime window), counted per bucket:
        all events, page views (``page_types``) and conversions (``conversion_types``), page
        views per page URL, and each visitor's and session's newest bucket. Uses the
        event-time index; costs one row per bucket, page, visitor and session of the window."""
        pages, conversions = sorted(page_types), sorted(conversion_types)
        return await self._on_writer(lambda conn: self._realtime_seed_blocking(conn, since, pages, conversions))

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

    async def revenue_by_day(self, since: datetime.datetime, until: datetime.datetime,
                             types: Iterable[str]) -> list[DailyRevenue]:
        """Events of ``types`` (completed bookings) stamped in ``[since, until)``, per UTC day in
        order: the sum of their values (none: 0) and their number. Uses the type-time index."""
        kinds = sorted(types)
        return await self._on_writer(lambda conn: self._revenue_by_day_blocking(conn, since, until, kinds))

    async def booking_events(self, since: datetime.datetime, until: datetime.datetime, types: Iterable[str],
                             limit: int) -> list[BookingEvent]:
        """Events of ``types`` stamped in ``[since, until)``, in time order (then event id): the
        latest ``limit`` of them when there are more. Uses the type-time index."""
        kinds = sorted(types)
        return await self._on_writer(lambda conn: self._booking_events_blocking(conn, since, until, kinds, limit))

    # ------------------------------------------------------------------------ the data lifecycle

    async def purge_step(self, table: str, cutoff: datetime.datetime, *, limit: int, resume: Any = None) -> PurgeStep:
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
        return await self._on_writer(lambda conn: self._purge_step_blocking(conn, table, cutoff, limit, resume))

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
        """Up to ``limit`` dead letters, newest first (by id), with ids below ``before`` when given."""
        return await self._on_writer(lambda conn: self._rejected_page_blocking(conn, limit, before))

    @abc.abstractmethod
    def _purge_step_blocking(self, conn: Any, table: str, cutoff: datetime.datetime, limit: int,
                             resume: Any) -> PurgeStep: ...

    @abc.abstractmethod
    def _erase_events(self, conn: Any, user_fingerprint: str, since_txn: int | None) -> dict[str, int]:
        """Inside a transaction: delete the visitor's events (only those of log transactions from
        ``since_txn`` on, through the log index, when given); ``{"analytics_events": n}``."""

    @abc.abstractmethod
    def _erase_letters(self, conn: Any, needles: tuple[str, str]) -> int:
        """Inside a transaction: delete the dead letters whose payload holds one of ``needles``."""

    @abc.abstractmethod
    def _fence_partition(self, conn: Any, partition: int) -> None:
        """Inside a transaction: raise the partition's epoch (waiting for a write of it in flight)."""

    @abc.abstractmethod
    def _erase_derived(self, conn: Any, user_fingerprint: str) -> dict[str, int]:
        """Inside a transaction: delete the visitor's profile, predictions, sessions, journeys and
        days, so that no score record in flight brings a profile or a prediction back."""

    @abc.abstractmethod
    def _rejected_page_blocking(self, conn: Any, limit: int, before: int | None) -> list[RejectedLetter]: ...

    async def _on_writer(self, fn: Callable[[Any], T]) -> T:
        return await self._call(self._open_lane(_WRITER), fn, abandon=False)

    # ---------------------------------------------------------------- engine hooks (blocking)

    @abc.abstractmethod
    def _where(self) -> str:
        """Where the database is, for messages: ``PostgreSQL at host:port`` or the file."""

    @abc.abstractmethod
    def _connect(self, purpose: str) -> Any:
        """Open a connection for ``purpose`` ("writer" or "health"); raise the driver's error."""

    @abc.abstractmethod
    def _is_usable(self, conn: Any) -> bool:
        """False when the connection is closed or lost and must be replaced."""

    @abc.abstractmethod
    def _close_connection(self, conn: Any) -> None:
        """Close a connection (errors are logged and ignored by the caller)."""

    @abc.abstractmethod
    def _translate_error(self, exc: Exception) -> StorageError:
        """A driver error as StorageUnavailable (connection-level) or StorageError (the rest)."""

    @abc.abstractmethod
    def _ping_blocking(self, conn: Any) -> None:
        """Run a trivial query that proves the database answers."""

    @abc.abstractmethod
    def _table_names_blocking(self, conn: Any) -> set[str]: ...

    @abc.abstractmethod
    def _transaction(self, conn: Any) -> Any:
        """A context manager: one transaction, committed on success, rolled back on error."""

    @abc.abstractmethod
    def _lock_migrations(self, conn: Any) -> None:
        """Inside ``_transaction``: block until no other process is migrating this database."""

    @abc.abstractmethod
    def _ensure_migrations_table(self, conn: Any) -> None: ...

    @abc.abstractmethod
    def _read_applied(self, conn: Any) -> list[AppliedMigration]:
        """The rows of ``schema_migrations`` by version; [] when the table does not exist."""

    @abc.abstractmethod
    def _execute_script(self, conn: Any, sql: str) -> None:
        """Run every statement of a migration file inside the current transaction."""

    @abc.abstractmethod
    def _record_migration(self, conn: Any, migration: Migration) -> AppliedMigration:
        """Insert the ``schema_migrations`` row for ``migration`` and return it."""

    @abc.abstractmethod
    def _store_events(self, conn: Any, events: Sequence[Event]) -> set[str]:
        """Inside a transaction: insert ``events`` in order, skipping ids already stored (and
        repeats within ``events``), and return the ids actually inserted. Raise one of
        ``_row_errors`` when the database refuses a row. Nothing else is written with them:
        sessions, profiles and journeys come with the profile writes (``apply_profile_deltas``)."""

    @abc.abstractmethod
    def _log_txn(self, conn: Any) -> int:
        """Inside the transaction that just stored events (``_store_events``): its log transaction."""

    async def _store_on_loop(self, lane: _Lane, events: Sequence[Event]) -> tuple[set[str], int] | None:
        """Store ``events`` as ``_store_in_one_statement`` does, from the event loop itself
        (non-blocking I/O, no worker thread), and return the ids inserted with the log
        transaction; or None (the default)
        to leave the batch to the worker thread, which also isolates rows the database refuses.
        An engine that can, does so only while it holds ``lane`` (``_claim_lane``)."""
        return None

    def _claim_lane(self, lane: _Lane) -> Any:
        """``lane``'s connection, marked busy for the caller on the event loop, or None when a
        thread holds it, it is retired, or it is not connected yet. Release with ``_release_lane``."""
        try:
            lane.limiter.acquire_nowait()  # no checkpoint: the caller runs on at once
        except trio.WouldBlock:
            return None
        with lane.lock:
            conn = lane.conn
            if lane.retired or lane.busy or conn is None or not self._is_usable(conn):
                conn = None
            else:
                lane.busy = True
        if conn is None:
            lane.limiter.release()
        return conn

    async def _release_lane(self, lane: _Lane, *, broken: bool) -> None:
        """Undo ``_claim_lane``. With ``broken`` (the connection is dead, or left mid-protocol by
        a cancellation) or a lane retired meanwhile, the connection is closed; the next call
        reconnects."""
        with lane.lock:
            lane.busy = False
            stale, lane.conn = (lane.conn, None) if broken or lane.retired else (None, lane.conn)
        lane.limiter.release()
        if stale is not None:
            with trio.CancelScope(shield=True):
                await trio.to_thread.run_sync(self._close_quietly, stale)

    def _store_in_one_statement(self, conn: Any, events: Sequence[Event]) -> tuple[set[str], int] | None:
        """Outside any transaction: store ``events`` as ``_store_events`` does, in one atomic
        statement, and return the ids inserted with its log transaction; or None (the default) to have ``_store_events``
        run inside a transaction instead. Called only for a batch without dead letters; one
        statement saves the round trips of BEGIN, COPY and COMMIT."""
        return None

    @abc.abstractmethod
    def _received_times_blocking(self, conn: Any, event_ids: list[str]) -> dict[str, datetime.datetime]: ...

    def _apply_profile_deltas_blocking(self, conn: Any, deltas: Sequence[ProfileDelta], max_touchpoints: int,
                                       return_rows: bool, positions: Sequence[PartitionPosition],
                                       owner: str | None) -> dict[str, ProfileState]:
        try:
            with self._transaction(conn):
                # the partition rows first: a takeover waits for this write, or this write sees it
                if positions and self._record_positions(conn, owner, positions) < len(positions):
                    raise _Fenced
                return self._upsert_profiles(conn, deltas, max_touchpoints, return_rows) if deltas else {}
        except _Fenced:
            pass
        rows = self._partition_rows(conn, [p.partition for p in positions])
        if all(rows.get(p.partition) == (owner, p.epoch, p.writes + 1) for p in positions):
            return {}  # an earlier attempt committed: its reply was lost
        lost = frozenset(p.partition for p in positions if rows.get(p.partition, (None, None, None))[:2] != (owner, p.epoch))
        msg = f"{self._where()}: partition(s) {sorted(lost)} are owned by another instance now"
        raise LeaseLost(msg, lost)

    @abc.abstractmethod
    def _record_positions(self, conn: Any, owner: str | None, positions: Sequence[PartitionPosition]) -> int:
        """Inside a transaction: write each partition's position and add one to its ``writes``
        where ``owner`` holds it with the given epoch and writes; return how many rows matched."""

    @abc.abstractmethod
    def _partition_rows(self, conn: Any, partitions: list[int]) -> dict[int, tuple[str | None, int, int]]:
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
            guide = "docs/scaling.md, \"Growing the partitions\""
            if count < held or count % held:
                msg = (f"profiles.partitions is {count}, but the database holds {held} partitions: they can only "
                       f"grow, to a multiple of {held} ({guide})")
                raise PartitionsMismatch(msg)
            if self._live_leases(conn):
                msg = (f"profiles.partitions is {count}, the database holds {held}: growing them needs every "
                       f"instance stopped first ({guide})")
                raise PartitionsMismatch(msg)
            self._split_partitions(conn, held, count)
            logger.warning("%s: profile partitions grown from %d to %d", self._where(), held, count)

    def _lease_round_blocking(self, conn: Any, owner: str, partitions: int, ttl: float, release: list[int],
                              claim: bool) -> LeaseRound:
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

    def _read_log_blocking(self, conn: Any, cursors: list[PartitionPosition], partitions: int, limit: int,
                           skip: list[int]) -> LogPage:
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
            return LogPage(self._log_rows(conn, cursors, partitions, [(last, last + 1)], None), last + 1, more=True)
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
    def _log_rows(self, conn: Any, cursors: list[PartitionPosition], partitions: int, ranges: list[tuple[int, int]],
                  limit: int | None) -> list[LogEntry]:
        """The events with ``low <= log_txn < high`` for a ``(low, high)`` of ``ranges`` (ordered,
        disjoint) of the cursors' partitions that they do not cover, in log order (transaction,
        then the order they were handed over in), at most ``limit``."""

    def _visitor_view_blocking(self, conn: Any, user_fingerprint: str, partition: int) -> VisitorView:
        with self._read_snapshot(conn):  # the rows and the position they reflect, written together
            profiles = self._load_profiles_blocking(conn, [user_fingerprint])
            keys = self._visitor_keys_blocking(conn, user_fingerprint)
            journeys = self._load_journeys_blocking(conn, user_fingerprint)
            tail = self._visitor_tail(conn, user_fingerprint, partition)
        return VisitorView(profiles.get(user_fingerprint), keys, journeys, tail)

    @abc.abstractmethod
    def _read_snapshot(self, conn: Any) -> contextlib.AbstractContextManager[None]:
        """A read transaction whose statements all see one state of the database (within one
        already open: that one's)."""

    @abc.abstractmethod
    def _visitor_tail(self, conn: Any, user_fingerprint: str, partition: int) -> list[Touch]:
        """Inside ``_read_snapshot``: the visitor's events that its partition's position does not
        cover, in log order (none before the partitions exist: nobody has written anything)."""

    @abc.abstractmethod
    def _upsert_profiles(self, conn: Any, deltas: Sequence[ProfileDelta], max_touchpoints: int,
                         return_rows: bool) -> dict[str, ProfileState]:
        """Inside a transaction: what ``apply_profile_deltas`` promises."""

    @abc.abstractmethod
    def _load_profiles_blocking(self, conn: Any, user_fingerprints: list[str]) -> dict[str, ProfileState]: ...

    @abc.abstractmethod
    def _visitor_keys_blocking(self, conn: Any, user_fingerprint: str) -> VisitorKeys: ...

    def _record_scores_blocking(self, conn: Any, records: Sequence[ScoreRecord]) -> None:
        with self._transaction(conn):
            self._record_scores(conn, records)

    @abc.abstractmethod
    def _record_scores(self, conn: Any, records: Sequence[ScoreRecord]) -> None:
        """Inside a transaction: what ``record_scores`` promises."""

    @abc.abstractmethod
    def _profiles_to_rescore_blocking(self, conn: Any, scored_before: datetime.datetime, limit: int) -> list[ProfileState]: ...

    @abc.abstractmethod
    def _recent_predictions_blocking(self, conn: Any, user_fingerprint: str, limit: int) -> list[StoredPrediction]: ...

    @abc.abstractmethod
    def _load_journeys_blocking(self, conn: Any, user_fingerprint: str) -> list[StoredJourney]: ...

    @abc.abstractmethod
    def _funnel_blocking(self, conn: Any, query: FunnelQuery, timeout: float) -> list[FunnelStep]: ...

    @abc.abstractmethod
    def _profiles_page_blocking(self, conn: Any, offset: int, limit: int) -> ProfilesPage: ...

    @abc.abstractmethod
    def _top_profiles_blocking(self, conn: Any, since: datetime.datetime, limit: int) -> list[ProfileState]: ...

    @abc.abstractmethod
    def _visitor_counts_blocking(self, conn: Any, since: datetime.datetime) -> VisitorCounts: ...

    @abc.abstractmethod
    def _revenue_by_day_blocking(self, conn: Any, since: datetime.datetime, until: datetime.datetime,
                                 types: list[str]) -> list[DailyRevenue]: ...

    @abc.abstractmethod
    def _booking_events_blocking(self, conn: Any, since: datetime.datetime, until: datetime.datetime,
                                 types: list[str], limit: int) -> list[BookingEvent]: ...

    @abc.abstractmethod
    def _realtime_seed_blocking(self, conn: Any, since: datetime.datetime, page_types: list[str],
                                conversion_types: list[str]) -> RealtimeSeed: ...

    @abc.abstractmethod
    def _insert_dead_letters(self, conn: Any, letters: Sequence[DeadLetter]) -> None:
        """Inside a transaction: append ``letters`` to ``rejected_events``."""

    # ------------------------------------------------------------------------ shared machinery

    def _migrate_one_blocking(
        self, conn: Any, available: Sequence[Migration]
    ) -> AppliedMigration | None:
        with self._transaction(conn):
            self._lock_migrations(conn)
            self._ensure_migrations_table(conn)
            pending = plan_migrations(available, self._read_applied(conn))
            if not pending:
                return None
            migration = pending[0]
            try:
                self._execute_script(conn, migration.sql)
            except self._driver_errors as exc:
                translated = self._translate_error(exc)
                if isinstance(translated, StorageUnavailable):
                    raise translated from exc
                msg = f"{migration.filename} failed and was rolled back: {first_line(exc)}"
                raise MigrationError(msg) from exc
            return self._record_migration(conn, migration)

    def _write_batch_blocking(
        self, conn: Any, events: Sequence[Event], dead_letters: Sequence[DeadLetter]
    ) -> CommittedBatch:
        outcomes: list[Outcome | None] = [None] * len(events)
        refused: list[DeadLetter] = []
        txns: set[int] = set()  # the log transactions that stored events

        def attempt(indices: list[int], letters: Sequence[DeadLetter]) -> None:
            chunk = [events[i] for i in indices]
            try:
                single = self._store_in_one_statement(conn, chunk) if chunk and not letters else None
                with contextlib.nullcontext() if single is not None else self._transaction(conn):
                    if single is not None:
                        inserted, txn = single
                    elif chunk:
                        inserted = self._store_events(conn, chunk)
                        txn = self._log_txn(conn) if inserted else 0
                    else:
                        inserted, txn = set(), 0
                    if letters:
                        self._insert_dead_letters(conn, letters)
            except self._row_errors as exc:
                # Isolate what the database refuses; connection errors are not caught here.
                if letters and indices:
                    attempt(indices, ())
                    attempt([], letters)
                elif letters:
                    self._keep_refused_letters(conn, letters, exc)
                elif len(indices) > 1:
                    middle = len(indices) // 2
                    attempt(indices[:middle], ())
                    attempt(indices[middle:], ())
                elif indices:
                    index = indices[0]
                    reason = f"refused by the database: {first_line(exc)}"
                    outcomes[index] = Outcome(Status.REJECTED, reason)
                    refused.append(refused_event_letter(events[index], reason))
                return
            if inserted:
                txns.add(txn)
            for i, outcome in zip(indices, outcomes_of(events, indices, inserted), strict=True):
                outcomes[i] = outcome

        attempt(list(range(len(events))), dead_letters)
        if refused:
            with self._transaction(conn):
                self._insert_dead_letters(conn, refused)
            logger.warning("%s: %d event(s) refused by the database, kept as dead letters", self._where(), len(refused))
        return CommittedBatch(outcomes, txns.pop() if len(txns) == 1 else None)  # type: ignore[arg-type]  # all filled

    def _keep_refused_letters(self, conn: Any, letters: Sequence[DeadLetter], exc: Exception) -> None:
        """Dead letters the database refused (client text it cannot hold, such as NUL in a
        field name): store them with every string as printable ASCII escapes instead. Should
        even that be refused, log them whole; they are never dropped without a word."""
        escaped = [
            attrs.evolve(
                letter,
                reasons=tuple({printable(k): printable(v) for k, v in reason.items()} for reason in letter.reasons),
                payload=printable(letter.payload),
            )
            for letter in letters
        ]
        try:
            with self._transaction(conn):
                self._insert_dead_letters(conn, escaped)
        except self._row_errors as again:
            logger.error(
                "%s: dead letters refused (%s, then %s); they were: %r",
                self._where(), first_line(exc), first_line(again), list(letters),
            )

    def _available_migrations(self) -> list[Migration]:
        if self._migrations_dir is not None:
            return discover_migrations(self._migrations_dir)
        return load_migrations(self.migrations_folder)

    def _open_lane(self, purpose: str) -> _Lane:
        lane = self._writer if purpose == _WRITER else self._health
        if self._state != "open" or lane is None:
            state = "closed" if self._state == "closed" else "not open"
            msg = f"{self.url_for_display}: storage is {state}"
            raise StorageUnavailable(msg)
        return lane

    async def _call_health(self, fn: Callable[[Any], T], what: str) -> T:
        """Run ``fn`` on the health lane within ``ping_timeout``; replace the lane if it hangs."""
        lane = self._open_lane(_HEALTH)
        try:
            with trio.fail_after(self._ping_timeout):
                return await self._call(lane, fn, abandon=True)
        except trio.TooSlowError:
            if self._health is lane:
                self._health = _Lane(_HEALTH)
            await self._retire(lane)
            msg = f"{self._where()}: no answer to {what} within {self._ping_timeout:g} s"
            raise StorageUnavailable(msg) from None
        except StorageUnavailable:
            raise
        except StorageError as exc:
            # For a health check every failure means "unavailable".
            raise StorageUnavailable(str(exc)) from exc

    async def _call(self, lane: _Lane, fn: Callable[[Any], T], *, abandon: bool) -> T:
        """Run ``fn(connection)`` in a worker thread on ``lane``, (re)connecting first if needed.

        Driver errors come out as StorageError / StorageUnavailable; other exceptions unchanged.
        With ``abandon`` a cancelled call returns at once and its thread finishes on its own.
        """

        def work() -> T:
            with lane.lock:
                if lane.retired:  # closed, or given up on after a timeout while this call queued
                    msg = f"{self._where()}: connection closed"
                    raise StorageUnavailable(msg)
                lane.busy = True
            try:
                conn = lane.conn
                if conn is not None and not self._is_usable(conn):
                    logger.warning("%s connection to %s lost; reconnecting", lane.purpose, self._where())
                    lane.conn = None
                    self._close_quietly(conn)
                    conn = None
                if conn is None:
                    try:
                        conn = self._connect(lane.purpose)
                    except (*self._driver_errors, OSError) as exc:
                        msg = f"cannot connect to {self._where()}: {first_line(exc)}"
                        raise StorageUnavailable(msg) from exc
                    lane.conn = conn
                try:
                    return fn(conn)
                except self._driver_errors as exc:
                    raise self._translate_error(exc) from exc
                except StorageError:  # raised on purpose by fn, after the driver's error was handled
                    raise
                except BaseException:
                    # Not the driver's error: the connection may be stuck mid-protocol (a COPY
                    # or pipeline left open). Never reuse it; the next call reconnects.
                    lane.conn = None
                    self._close_quietly(conn)
                    raise
            finally:
                with lane.lock:
                    lane.busy = False
                    stale, lane.conn = (lane.conn, None) if lane.retired else (None, lane.conn)
                if stale is not None:
                    self._close_quietly(stale)

        return await trio.to_thread.run_sync(work, limiter=lane.limiter, abandon_on_cancel=abandon)

    async def _retire(self, lane: _Lane) -> None:
        """Stop using ``lane``: close its connection now, or let its running thread do it."""
        with lane.lock:
            lane.retired = True
            conn, lane.conn = (None, lane.conn) if lane.busy else (lane.conn, None)
        if conn is not None:
            with trio.CancelScope(shield=True):
                await trio.to_thread.run_sync(self._close_quietly, conn)

    def _close_quietly(self, conn: Any) -> None:
        try:
            self._close_connection(conn)
        except Exception:
            logger.debug("error while closing a connection to %s", self._where(), exc_info=True)


def open_storage(
    url: str,
    *,
    connect_timeout: float = DEFAULT_CONNECT_TIMEOUT,
    ping_timeout: float = DEFAULT_PING_TIMEOUT,
    migrations_dir: Traversable | None = None,
) -> Storage:
    """The storage for ``url``, not yet connected: ``await storage.open()`` or ``async with``.

    URLs: ``sqlite:///relative.db``, ``sqlite:////absolute.db``, ``sqlite:///:memory:`` (tests),
    ``postgresql://user:password@host:port/database`` (``postgres://`` too; libpq parameters such
    as ``?sslmode=require`` pass through).

    Raises:
        ValueError: unknown scheme, a malformed SQLite URL, or a non-positive timeout.
    """
    scheme = url.partition(":")[0].lower()
    options: dict[str, Any] = {
        "connect_timeout": connect_timeout,
        "ping_timeout": ping_timeout,
        "migrations_dir": migrations_dir,
    }
    if scheme == "sqlite":
        from .sqlite import SQLiteStorage

        return SQLiteStorage(url, **options)
    if scheme in ("postgresql", "postgres"):
        from .postgres import PostgresStorage

        return PostgresStorage(url, **options)
    msg = (
        f"unsupported storage URL {mask_password(url)!r}: "
        "expected sqlite:///path.db or postgresql://user@host:port/database"
    )
    raise ValueError(msg)


_REFUSED_LETTER_NAMESPACE = uuid.UUID("0b6f3c1e-5f7a-4c38-9d0e-7f2a4b1c9e55")

#: Longest payload kept for one dead letter, in characters.
DEAD_LETTER_PAYLOAD_LIMIT = 8192


def printable(text: str) -> str:
    """``text`` with control characters, non-ASCII characters and lone surrogates written as
    JSON escapes (``\\u0000``): storable by any database, readable by a person."""
    return json.dumps(text, ensure_ascii=True)[1:-1]


def event_as_json(event: Event) -> str:
    """An event as pure-ASCII JSON text: control characters and even lone surrogates (which the
    database may have refused) come out as escapes, so the dead letter itself is always storable.
    Rare path, so the stdlib encoder (it can do ``ensure_ascii``) rather than orjson."""
    return json.dumps(
        {
            "event_id": event.event_id,
            "user_fingerprint": event.user_fingerprint,
            "session_id": event.session_id,
            "event_type": event.event_type,
            "timestamp": event.timestamp.isoformat(),
            "sent_at": event.sent_at.isoformat() if event.sent_at else None,
            "page_url": event.page_url,
            "referrer": event.referrer,
            "value": event.value,
            "properties": event.properties,
        },
        ensure_ascii=True,
        default=str,
    )


def refused_event_letter(event: Event, reason: str) -> DeadLetter:
    payload = event_as_json(event)
    if len(payload) > DEAD_LETTER_PAYLOAD_LIMIT:
        payload = payload[:DEAD_LETTER_PAYLOAD_LIMIT]
    return DeadLetter(
        received_at=event.received_at,
        source="database",
        reasons=({"field": "", "message": reason},),
        payload=payload,
        # The same letter however often this batch is retried; another request refused for the
        # same event_id (received at another instant) is a letter of its own.
        letter_id=str(uuid.uuid5(_REFUSED_LETTER_NAMESPACE, f"{event.event_id}@{event.received_at.isoformat()}")),
    )
