"""SQLite storage: the standard library's ``sqlite3``, the embedded default engine.

One writer connection and one health connection (WAL mode lets the health connection read while
the writer writes). Connections are made with ``check_same_thread=False`` and used by one worker
thread at a time (see ``_connections.Lane``). Transactions are explicit: connections run in autocommit
mode (``isolation_level=None``) and ``BEGIN IMMEDIATE`` takes the write lock up front, so two writers
never deadlock upgrading a read lock.

Values: uuids and timestamps are TEXT (timestamps UTC, fixed width, see ``format_timestamp``), JSON
is TEXT. ``format_timestamp`` / ``parse_timestamp`` are the one place that format is written down.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import pathlib
import sqlite3
import sys
import time
import uuid
from collections.abc import Iterator, Sequence
from typing import Any

import orjson

from ..domain.funnel import FunnelQuery, FunnelStep
from ..domain.journeys import JOURNEY_STEP_TYPE, JourneyRow, merge_journey
from ..domain.partitions import slot_of
from ..domain.profiles import ProfileDelta, ProfileState, Touch, journey_rows, sessions_of
from ..domain.realtime import BUCKET_SECONDS
from ..domain.scoring import CHURN, ENGAGEMENT, LEAD, MODEL_TYPES, PRICE_SENSITIVITY, ScoreRecord
from ..messages import DeadLetter, Event
from ._interface import Storage
from ._messages import first_line
from ._errors import QueryTimeout, StorageError, StorageMisconfigured, StorageUnavailable
from ._lifecycle import PurgeStep, RejectedLetter
from ._queries import load_queries
from ._records import (
    EVENT_EXTRA_COLUMNS,
    LogEntry,
    PartitionPosition,
    RealtimeSeed,
    StoredJourney,
    StoredPrediction,
    VisitorKeys,
    event_extra_values,
    score_record_row,
    stored_scores,
)
from ._reports import BookingEvent, DailyRevenue, ProfilesPage, VisitorCounts
from .migrations import AppliedMigration, Migration

logger = logging.getLogger(__name__)

#: Seconds a connection waits for another connection's write lock before giving up with
#: SQLITE_BUSY (reported as StorageUnavailable). Writes here are short group commits; waiting a
#: few seconds rides out another process's migration or checkpoint without failing a flush.
SQLITE_BUSY_TIMEOUT = 5.0

#: Durability. In WAL mode ``synchronous=NORMAL`` survives an application crash but a commit can
#: be lost on power failure or an OS crash, because the WAL is only fsynced at checkpoints. The
#: service answers "stored" after commit, so the commit must be on disk: FULL fsyncs the WAL at
#: every commit. Group commit keeps the cost to one fsync per batch, not per event.
SQLITE_SYNCHRONOUS = "FULL"

#: Timestamps are stored as UTC text of fixed width, so comparing text compares times.
TIMESTAMP_FORMAT = "%Y-%m-%dT%H:%M:%S.%fZ"

#: Error names (``sqlite3.Error.sqlite_errorname``) that mean "cannot reach the data right now".
_UNAVAILABLE_ERRORS = (
    "SQLITE_BUSY",
    "SQLITE_LOCKED",
    "SQLITE_CANTOPEN",
    "SQLITE_IOERR",
    "SQLITE_FULL",
    "SQLITE_NOTADB",
    "SQLITE_READONLY",
    "SQLITE_PERM",
)

_MEMORY = ":memory:"

#: The named queries of ``sql/sqlite/queries/*.sql``.
Q = load_queries("sqlite")

_EXTRA_LIST = ", ".join(EVENT_EXTRA_COLUMNS)
_CREATE_STAGING = Q["create_staging"].replace("{extra}", _EXTRA_LIST)
_INSERT_STAGING = Q["insert_staging"].replace(
    "{marks}", ", ".join("?" * (13 + len(EVENT_EXTRA_COLUMNS)))
)
_INSERT_FROM_STAGING = Q["insert_from_staging"].replace("{extra}", _EXTRA_LIST)
#: Bound parameters per statement (SQLite's limit is 32766 since 3.32; stay far below it).
_MAX_PARAMETERS = 500


def _marks(count: int) -> str:
    """An IN-list of ``count`` placeholders (NULL for none: matches nothing)."""
    return ", ".join("?" * count) or "NULL"


def _with_marks(name: str, count: int) -> str:
    """The query ``name`` with its ``{marks}`` IN-list of ``count`` placeholders."""
    return Q[name].replace("{marks}", _marks(count))


_BUCKET = str(int(BUCKET_SECONDS))
_REALTIME_NEWEST = {
    key: Q[name].replace("{bucket}", _BUCKET)
    for key, name in (
        ("user_fingerprint", "realtime_newest_by_visitor"),
        ("session_id", "realtime_newest_by_session"),
    )
}

def _optional_timestamp(value: dt.datetime | None) -> str | None:
    return None if value is None else format_timestamp(value)


def _optional_datetime(text: str | None) -> dt.datetime | None:
    return None if text is None else parse_timestamp(text)
_PREFIX = "sqlite:///"


def format_timestamp(value: dt.datetime) -> str:
    """An aware datetime as stored: UTC, ``YYYY-MM-DDTHH:MM:SS.ffffffZ``.

    Raises:
        ValueError: ``value`` is naive (its zone would be a guess).
    """
    if value.tzinfo is None or value.utcoffset() is None:
        msg = f"naive datetime {value!r}: timestamps must carry a time zone"
        raise ValueError(msg)
    return value.astimezone(dt.timezone.utc).strftime(TIMESTAMP_FORMAT)


def parse_timestamp(text: str) -> dt.datetime:
    """A stored timestamp as an aware UTC datetime."""
    return dt.datetime.fromisoformat(text).astimezone(dt.timezone.utc)


def database_path(url: str) -> str:
    """The file named by a SQLite URL: ``sqlite:///rel.db`` -> ``rel.db``,
    ``sqlite:////abs.db`` -> ``/abs.db``, ``sqlite:///:memory:`` -> ``:memory:``.

    Raises:
        ValueError: not a ``sqlite:///`` URL, no path, or query parameters (not supported).
    """
    if not url.lower().startswith(_PREFIX):
        msg = f"not a SQLite URL: {url!r} (expected sqlite:///relative.db or sqlite:////absolute.db)"
        raise ValueError(msg)
    path = url[len(_PREFIX) :]
    if not path:
        msg = f"SQLite URL {url!r} names no file"
        raise ValueError(msg)
    if "?" in path:
        msg = f"SQLite URL {url!r}: query parameters are not supported"
        raise ValueError(msg)
    return path


def split_statements(script: str) -> list[str]:
    """Split a SQL script into single statements, as ``sqlite3`` executes one at a time.

    Uses ``sqlite3.complete_statement``, so semicolons inside strings, comments and trigger
    bodies do not split. A trailing part that is not a complete statement is returned as is (it is
    either only comments, which execute as nothing, or an error SQLite will report).

    ``executescript`` is not used because it commits the open transaction first.
    """
    statements: list[str] = []
    start = 0
    for index, char in enumerate(script):
        if char == ";" and sqlite3.complete_statement(script[start : index + 1]):
            statements.append(script[start : index + 1].strip())
            start = index + 1
    rest = script[start:].strip()
    if rest:
        statements.append(rest)
    return statements


class SQLiteStorage(Storage):
    """Storage in one SQLite file (or a private in-memory database for tests).

    The file is created on ``open()``; its folder must exist (else StorageMisconfigured, naming
    it). WAL journal, ``synchronous=FULL`` (a committed transaction survives power loss), foreign
    keys on. With ``:memory:`` both
    connections share one private in-memory database (shared cache) that vanishes on close.
    """

    engine = "sqlite"
    migrations_folder = "sqlite"
    _driver_errors = (sqlite3.Error,)
    _queries = Q
    # ValueError: text Python cannot encode as UTF-8 (a lone surrogate); OverflowError: an
    # integer wider than 64 bits.
    _row_errors = (sqlite3.IntegrityError, sqlite3.DataError, ValueError, OverflowError)

    def __init__(self, url: str, **options: Any) -> None:
        """See ``Storage.__init__`` for ``options``; the URL is parsed (not connected) here."""
        super().__init__(url, **options)
        path = database_path(url)
        self._memory_uri: str | None = None
        self._path: pathlib.Path | None = None
        if path == _MEMORY:
            self._memory_uri = f"file:revivatech-{uuid.uuid4().hex}?mode=memory&cache=shared"
        else:
            # Absolute now, so a later change of working directory cannot move the database.
            self._path = pathlib.Path(path).absolute()

    @property
    def path(self) -> pathlib.Path | None:
        """The database file (absolute), or None for an in-memory database."""
        return self._path

    def _where(self) -> str:
        return f"SQLite database {self._path if self._path is not None else _MEMORY}"

    def _connect(self, purpose: str) -> sqlite3.Connection:
        options = {
            "timeout": SQLITE_BUSY_TIMEOUT,
            "check_same_thread": False,
            "isolation_level": None,  # autocommit; transactions are explicit (BEGIN IMMEDIATE)
        }
        if self._memory_uri is not None:
            conn = sqlite3.connect(self._memory_uri, uri=True, **options)
        elif purpose == "writer":
            assert self._path is not None
            # The file is created, its folder never: a typo in the URL must not make folders.
            if not self._path.parent.is_dir():
                msg = (f"the folder {self._path.parent} does not exist (create it, or set storage.url or "
                       "REVIVATECH_STORAGE_URL to a file in an existing folder)")
                raise StorageMisconfigured(msg)
            conn = sqlite3.connect(self._path, **options)
        else:
            # mode=rw: the health connection never creates a file, so a deleted database shows
            # as unavailable instead of as a new empty one.
            assert self._path is not None
            conn = sqlite3.connect(f"{self._path.as_uri()}?mode=rw", uri=True, **options)
        try:
            if purpose == "writer":
                mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
                if mode.lower() not in ("wal", "memory"):
                    logger.warning(
                        "%s: WAL journal refused (%s); readers will wait for writers",
                        self._where(),
                        mode,
                    )
                conn.execute(f"PRAGMA synchronous = {SQLITE_SYNCHRONOUS}")
                conn.execute("PRAGMA foreign_keys = ON")
                conn.execute(_CREATE_STAGING)
            else:
                conn.execute("PRAGMA query_only = ON")
                if self._memory_uri is not None:
                    # Shared-cache readers take table locks; without this a health read during a
                    # write transaction fails with SQLITE_LOCKED. Only for the in-memory test DB.
                    conn.execute("PRAGMA read_uncommitted = ON")
        except BaseException:
            conn.close()
            raise
        return conn

    def _is_usable(self, conn: sqlite3.Connection) -> bool:
        try:
            conn.total_changes  # noqa: B018 - raises ProgrammingError once closed
        except sqlite3.ProgrammingError:
            return False
        return True

    def _close_connection(self, conn: sqlite3.Connection) -> None:
        conn.close()

    def _translate_error(self, exc: Exception) -> StorageError:
        message = f"{self._where()}: {first_line(exc)}"
        name = getattr(exc, "sqlite_errorname", None) or ""
        closed = isinstance(exc, sqlite3.ProgrammingError) and "closed" in str(exc)
        if closed or name.startswith(_UNAVAILABLE_ERRORS):
            return StorageUnavailable(message)
        return StorageError(message)

    def _ping_blocking(self, conn: sqlite3.Connection) -> None:
        conn.execute(Q["ping"]).fetchone()

    def _table_names_blocking(self, conn: sqlite3.Connection) -> set[str]:
        rows = conn.execute(Q["table_names"]).fetchall()
        return {name for (name,) in rows}

    @contextlib.contextmanager
    def _transaction(self, conn: sqlite3.Connection) -> Iterator[None]:
        conn.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")

    def _lock_migrations(self, conn: sqlite3.Connection) -> None:
        """Nothing to do: ``BEGIN IMMEDIATE`` already holds the database's write lock."""

    def _ensure_migrations_table(self, conn: sqlite3.Connection) -> None:
        conn.execute(Q["create_migrations_table"])

    def _read_applied(self, conn: sqlite3.Connection) -> list[AppliedMigration]:
        exists = conn.execute(Q["migrations_table_exists"]).fetchone()
        if exists is None:
            return []
        rows = conn.execute(Q["applied_migrations"]).fetchall()
        return [
            AppliedMigration(version=v, name=n, checksum=c, applied_at=parse_timestamp(at))
            for v, n, c, at in rows
        ]

    def _execute_script(self, conn: sqlite3.Connection, sql: str) -> None:
        for statement in split_statements(sql):
            conn.execute(statement)

    def _record_migration(self, conn: sqlite3.Connection, migration: Migration) -> AppliedMigration:
        applied_at = format_timestamp(dt.datetime.now(dt.timezone.utc))
        conn.execute(
            Q["record_migration"],
            (migration.version, migration.name, migration.checksum, applied_at),
        )
        return AppliedMigration(
            version=migration.version,
            name=migration.name,
            checksum=migration.checksum,
            applied_at=parse_timestamp(applied_at),
        )

    def _store_events(self, conn: sqlite3.Connection, events: Sequence[Event]) -> set[str]:
        conn.executemany(
            _INSERT_STAGING,
            [
                (
                    seq, e.event_id, e.user_fingerprint, e.session_id, e.event_type, format_timestamp(e.timestamp),
                    format_timestamp(e.received_at), _optional_timestamp(e.sent_at), e.page_url, e.referrer, e.value,
                    orjson.dumps(e.properties).decode(), slot_of(e.user_fingerprint), *event_extra_values(e),
                )
                for seq, e in enumerate(events)
            ],
        )
        try:
            (txn,) = conn.execute(Q["next_log_txn"]).fetchone()
            return {event_id for (event_id,) in conn.execute(_INSERT_FROM_STAGING, (txn,)).fetchall()}
        finally:
            conn.execute(Q["clear_staging"])

    def _log_txn(self, conn: sqlite3.Connection) -> int:
        return conn.execute(Q["log_txn"]).fetchone()[0]

    def _received_times_blocking(self, conn: sqlite3.Connection, event_ids: list[str]) -> dict[str, dt.datetime]:
        found: dict[str, dt.datetime] = {}
        for start in range(0, len(event_ids), _MAX_PARAMETERS):
            chunk = event_ids[start : start + _MAX_PARAMETERS]
            rows = conn.execute(_with_marks("received_times", len(chunk)), chunk)
            found.update((event_id, parse_timestamp(received_at)) for event_id, received_at in rows)
        return found

    def _insert_dead_letters(self, conn: sqlite3.Connection, letters: Sequence[DeadLetter]) -> None:
        conn.executemany(
            Q["insert_dead_letter"],
            [(d.letter_id, format_timestamp(d.received_at), d.source, orjson.dumps(d.reasons).decode(), d.payload) for d in letters],
        )

    def _upsert_profiles(self, conn: sqlite3.Connection, deltas: Sequence[ProfileDelta],
                         max_touchpoints: int, return_rows: bool) -> dict[str, ProfileState]:
        # One writer holds the database (BEGIN IMMEDIATE): journeys are merged here, in Python,
        # by the same rules PostgreSQL applies in SQL.
        for d in deltas:
            fp = d.user_fingerprint
            row = conn.execute(Q["last_booking"], (fp,)).fetchone()
            booked_at = _optional_datetime(row[0]) if row else None
            new_days = sum(conn.execute(Q["insert_active_day"], (fp, day.isoformat())).rowcount for day in d.active_days)
            new_sessions = sum(self._merge_journey(conn, j, booked_at, max_touchpoints) for j in journey_rows(d))
            conn.execute(
                Q["upsert_profile"],
                (
                    fp, d.events, d.page_views, d.bookings_started, d.bookings_completed, d.value,
                    _optional_timestamp(d.first_seen), _optional_timestamp(d.last_seen),
                    _optional_timestamp(d.last_booking_at), new_days, new_sessions, orjson.dumps(d.event_counts).decode(),
                    orjson.dumps(d.device_counts).decode(), d.customer_id, _optional_timestamp(d.customer_id_at),
                ),
            )
        conn.executemany(
            Q["upsert_session"],
            [
                (
                    d.session_id, d.user_fingerprint, format_timestamp(d.started_at), format_timestamp(d.last_activity_at),
                    d.event_count, d.page_views, d.entry_page, d.exit_page, d.referrer, d.utm_source,
                )
                for d in sessions_of(deltas)
            ],
        )
        return self._load_profiles_blocking(conn, [d.user_fingerprint for d in deltas]) if return_rows else {}

    def _merge_journey(self, conn: sqlite3.Connection, j: dict[str, Any], booked_at: dt.datetime | None,
                       max_touchpoints: int) -> bool:
        """Insert or merge one session's journey row (``domain.journeys.merge_journey``); True
        when the session is new."""
        fp, sid = j["user_fingerprint"], j["session_id"]
        stored = conn.execute(Q["select_journey"], (fp, sid)).fetchone()
        new = JourneyRow(
            j["touchpoints"], j["stage"], j["first_source"], j["first_source_at"], j["last_source"],
            j["last_source_at"], j["started_at"], j["last_at"],
        )
        old = None if stored is None else _journey_row(stored)
        row = merge_journey(old, new, max_touchpoints, booked_at)
        conn.execute(
            Q["upsert_journey"],
            (fp, sid, orjson.dumps(row.touchpoints).decode(), row.stage, row.first_source,
             _optional_timestamp(row.first_source_at), row.last_source,
             _optional_timestamp(row.last_source_at), format_timestamp(row.started_at),
             format_timestamp(row.last_at)),
        )
        return old is None

    def _load_profiles_blocking(self, conn: sqlite3.Connection, user_fingerprints: list[str]) -> dict[str, ProfileState]:
        found: dict[str, ProfileState] = {}
        for start in range(0, len(user_fingerprints), _MAX_PARAMETERS):
            chunk = user_fingerprints[start : start + _MAX_PARAMETERS]
            rows = conn.execute(_with_marks("load_profiles", len(chunk)), chunk)
            found.update((row[0], _profile_state(row)) for row in rows)
        return found

    def _visitor_keys_blocking(self, conn: sqlite3.Connection, user_fingerprint: str) -> VisitorKeys:
        with _read_snapshot(conn):  # sessions and days as of one write
            sessions = conn.execute(Q["visitor_sessions"], (user_fingerprint,)).fetchall()
            days = conn.execute(Q["visitor_days"], (user_fingerprint,)).fetchall()
        return VisitorKeys(
            sessions=frozenset(sid for (sid,) in sessions),
            days=frozenset(dt.date.fromisoformat(day) for (day,) in days),
        )

    def _record_scores(self, conn: sqlite3.Connection, records: Sequence[ScoreRecord]) -> None:
        for r in records:
            row = score_record_row(r)
            at = format_timestamp(r.scored_at)
            stored = conn.execute(Q["scored_state"], (r.user_fingerprint,)).fetchone()
            if stored is None:  # no profile: nothing to score
                continue
            if (stored[0], stored[1] or "") > (r.version, at):  # an older result changes nothing
                continue
            values: dict[str, float] = {}
            for p in row["predictions"]:
                values[p["model_type"]] = p["value"]
                conn.execute(
                    Q["insert_prediction"],
                    (r.user_fingerprint, p["model_type"], p["value"], p["confidence"], orjson.dumps(p["factors"]).decode(), at),
                )
            conn.execute(
                Q["record_score"],
                (r.segment, at, r.version, values.get(ENGAGEMENT), values.get(LEAD), values.get(CHURN),
                 values.get(PRICE_SENSITIVITY), r.user_fingerprint),
            )

    def _profiles_to_rescore_blocking(self, conn: sqlite3.Connection, scored_before: dt.datetime,
                                      limit: int) -> list[ProfileState]:
        rows = conn.execute(Q["profiles_to_rescore"], (format_timestamp(scored_before), limit))
        return [_profile_state(row) for row in rows.fetchall()]

    def _recent_predictions_blocking(self, conn: sqlite3.Connection, user_fingerprint: str,
                                     limit: int) -> list[StoredPrediction]:
        rows = []
        # One snapshot: a scorer commit between two models' reads would show one scoring's
        # predictions without another model's.
        with _read_snapshot(conn):
            for model_type in MODEL_TYPES:  # each model's latest rows, through its index
                rows += conn.execute(
                    Q["recent_predictions"], (user_fingerprint, model_type, limit)
                ).fetchall()
        rows.sort(key=lambda row: (row[4], row[5]), reverse=True)
        return [StoredPrediction(model, value, confidence, orjson.loads(factors), parse_timestamp(created))
                for model, value, confidence, factors, created, _ in rows]

    def _funnel_blocking(self, conn: sqlite3.Connection, query: FunnelQuery, timeout: float) -> list[FunnelStep]:
        types = sorted(set(query.steps))
        params: dict[str, Any] = {
            "start": format_timestamp(query.start), "end": format_timestamp(query.end),
            "horizon": format_timestamp(query.end + dt.timedelta(seconds=query.window)), "window": query.window,
            **{f"type{i}": kind for i, kind in enumerate(types)},
        }
        for k, step in enumerate(query.steps, 1):
            params[f"step{k}"] = step
            if k > 1:
                params[f"window{k}"] = query.step_windows[k - 2] if query.step_windows else query.window
        deadline = time.monotonic() + timeout
        conn.set_progress_handler(lambda: time.monotonic() > deadline, 10_000)  # true: interrupt
        try:
            with _read_snapshot(conn):
                row = conn.execute(_funnel_sql(len(query.steps), len(types)), params).fetchone()
        except sqlite3.OperationalError as exc:
            if time.monotonic() <= deadline:
                raise
            msg = f"{self._where()}: the funnel took longer than {timeout:g} s and was cancelled"
            raise QueryTimeout(msg) from exc
        finally:
            conn.set_progress_handler(None, 0)
        return [FunnelStep(row[2 * i], row[2 * i + 1]) for i in range(len(query.steps))]

    def _realtime_seed_blocking(self, conn: sqlite3.Connection, since: dt.datetime, page_types: list[str],
                                conversion_types: list[str]) -> RealtimeSeed:
        pages, conversions = _marks(len(page_types)), _marks(len(conversion_types))
        counts_sql = Q["realtime_counts"].replace("{pages}", pages)
        counts_sql = counts_sql.replace("{conversions}", conversions).replace("{bucket}", _BUCKET)
        pages_sql = Q["realtime_pages"].replace("{pages}", pages).replace("{bucket}", _BUCKET)
        since_text = format_timestamp(since)
        with _read_snapshot(conn):  # one snapshot for the four answers
            counts = conn.execute(
                counts_sql, (*page_types, *conversion_types, since_text)
            ).fetchall()
            page_views = conn.execute(pages_sql, (since_text, *page_types)).fetchall()
            newest = {
                key: dict(conn.execute(sql, (since_text,)).fetchall())
                for key, sql in _REALTIME_NEWEST.items()
            }
        return RealtimeSeed([tuple(r) for r in counts], [tuple(r) for r in page_views],
                            newest["user_fingerprint"], newest["session_id"])

    def _load_journeys_blocking(self, conn: sqlite3.Connection, user_fingerprint: str) -> list[StoredJourney]:
        rows = conn.execute(Q["load_journeys"], (user_fingerprint,))
        return [StoredJourney(sid, orjson.loads(points), stage, first, last, parse_timestamp(started), parse_timestamp(updated))
                for sid, points, stage, first, last, started, updated in rows.fetchall()]

    # Admin reports: see sql/sqlite/queries/reports.sql.

    def _profiles_page_blocking(self, conn: sqlite3.Connection, offset: int, limit: int) -> ProfilesPage:
        with _read_snapshot(conn):  # the count and the page of one snapshot
            (total,) = conn.execute(Q["count_profiles"]).fetchone()
            rows = conn.execute(Q["profiles_page"], (limit, offset)).fetchall()
        return ProfilesPage(total, [_profile_state(row) for row in rows])

    def _top_profiles_blocking(self, conn: sqlite3.Connection, since: dt.datetime, limit: int) -> list[ProfileState]:
        rows = conn.execute(Q["top_profiles"], (format_timestamp(since), limit))
        return [_profile_state(row) for row in rows.fetchall()]

    def _visitor_counts_blocking(self, conn: sqlite3.Connection, since: dt.datetime) -> VisitorCounts:
        at = format_timestamp(since)
        active, new = conn.execute(Q["visitor_counts"], (at, at)).fetchone()
        return VisitorCounts(active, new)

    def _revenue_by_day_blocking(self, conn: sqlite3.Connection, since: dt.datetime, until: dt.datetime,
                                 types: list[str]) -> list[DailyRevenue]:
        rows = conn.execute(
            Q["revenue_by_day"].replace("{types}", _marks(len(types))),
            (*types, format_timestamp(since), format_timestamp(until)),
        ).fetchall()
        return [DailyRevenue(dt.date.fromisoformat(day), float(revenue), orders) for day, revenue, orders in rows]

    def _booking_events_blocking(self, conn: sqlite3.Connection, since: dt.datetime, until: dt.datetime,
                                 types: list[str], limit: int) -> list[BookingEvent]:
        rows = conn.execute(
            Q["booking_events"].replace("{types}", _marks(len(types))),
            (*types, format_timestamp(since), format_timestamp(until), limit),
        ).fetchall()
        return [BookingEvent(fp, kind, parse_timestamp(at), value) for fp, kind, at, value in rows]


    # ------------------------------------------------------------------ the log and its partitions

    def _record_positions(self, conn: sqlite3.Connection, owner: str | None,
                          positions: Sequence[PartitionPosition]) -> int:
        now = format_timestamp(dt.datetime.now(dt.UTC))
        return sum(conn.execute(
            Q["record_position"],
            (p.horizon, orjson.dumps(sorted(p.applied)).decode(), now, p.partition, owner, p.epoch, p.writes),
        ).rowcount for p in positions)

    def _partition_rows(self, conn: sqlite3.Connection, partitions: list[int]) -> dict[int, tuple[str | None, int, int]]:
        rows = conn.execute(Q["partition_rows"]).fetchall()
        wanted = set(partitions)
        return {partition: (owner, epoch, writes) for partition, owner, epoch, writes in rows if partition in wanted}

    def _lock_partitions(self, conn: sqlite3.Connection) -> None:
        """Nothing to do: ``BEGIN IMMEDIATE`` already holds the database's write lock."""

    def _partition_count(self, conn: sqlite3.Connection) -> int:
        return conn.execute(Q["partition_count"]).fetchone()[0]

    def _create_partitions(self, conn: sqlite3.Connection, partitions: range) -> None:
        now = format_timestamp(dt.datetime.now(dt.UTC))
        conn.executemany(Q["create_partition"], [(p, now) for p in partitions])
        conn.executemany(Q["create_lease"], [(p,) for p in partitions])

    def _split_partitions(self, conn: sqlite3.Connection, held: int, count: int) -> None:
        now = format_timestamp(dt.datetime.now(dt.UTC))
        parents = {p: (h, a) for p, h, a in conn.execute(Q["partition_positions"])}
        conn.executemany(Q["split_partition"],
                         [(q, *parents[q % held], now) for q in range(held, count)])
        conn.executemany(Q["create_lease"], [(q,) for q in range(held, count)])
        conn.execute(Q["release_all_leases"])

    def _live_leases(self, conn: sqlite3.Connection) -> int:
        now = format_timestamp(dt.datetime.now(dt.UTC))
        return conn.execute(Q["live_leases"], (now,)).fetchone()[0]

    def _lease_heartbeat(self, conn: sqlite3.Connection, owner: str, ttl: float) -> None:
        now = dt.datetime.now(dt.UTC)
        conn.execute(Q["lease_heartbeat"],
                     (owner, format_timestamp(now + dt.timedelta(seconds=ttl)), format_timestamp(now)))
        conn.execute(Q["forget_owners"], (format_timestamp(now - dt.timedelta(minutes=1)),))

    def _lease_release(self, conn: sqlite3.Connection, owner: str, partitions: list[int]) -> None:
        conn.executemany(Q["lease_release"], [(owner, p) for p in partitions])

    def _lease_renew(self, conn: sqlite3.Connection, owner: str, ttl: float) -> dict[int, int]:
        until = format_timestamp(dt.datetime.now(dt.UTC) + dt.timedelta(seconds=ttl))
        renewed = [p for (p,) in conn.execute(Q["lease_renew"], (until, owner)).fetchall()]
        epochs = dict(conn.execute(Q["partition_epochs"]).fetchall())
        return {p: epochs[p] for p in renewed}

    def _live_owners(self, conn: sqlite3.Connection) -> int:
        now = format_timestamp(dt.datetime.now(dt.UTC))
        return conn.execute(Q["live_owners"], (now,)).fetchone()[0]

    def _lease_claim(self, conn: sqlite3.Connection, owner: str, ttl: float, want: int) -> list[PartitionPosition]:
        now = dt.datetime.now(dt.UTC)
        taken = [p for (p,) in conn.execute(
            Q["lease_claim"],
            (owner, format_timestamp(now + dt.timedelta(seconds=ttl)), format_timestamp(now), want),
        ).fetchall()]
        rows = [conn.execute(Q["claim_partition"], (owner, p)).fetchone() for p in taken]
        return sorted((PartitionPosition(partition, epoch, writes, horizon, frozenset(orjson.loads(applied)))
                       for partition, epoch, writes, horizon, applied in rows), key=lambda c: c.partition)

    def _leave_blocking(self, conn: sqlite3.Connection, owner: str) -> None:
        with self._transaction(conn):
            conn.execute(Q["leave_leases"], (owner,))
            conn.execute(Q["leave_owners"], (owner,))

    def _log_horizon(self, conn: sqlite3.Connection) -> int:
        return conn.execute(Q["log_horizon"]).fetchone()[0]

    def _log_rows(self, conn: sqlite3.Connection, cursors: list[PartitionPosition], partitions: int,
                  ranges: list[tuple[int, int]], limit: int | None) -> list[LogEntry]:
        rows = [{"partition": c.partition, "horizon": c.horizon, "applied": sorted(c.applied)} for c in cursors]
        params = {"cursors": orjson.dumps(rows).decode(), "partitions": partitions, "ranges": orjson.dumps(ranges).decode(),
                  "step": JOURNEY_STEP_TYPE}
        sql = Q["log_rows"] if limit is None else Q["log_rows"] + f" LIMIT {int(limit)}"
        return [_log_entry(row) for row in conn.execute(sql, params).fetchall()]

    def _read_snapshot(self, conn: sqlite3.Connection) -> contextlib.AbstractContextManager[None]:
        return _read_snapshot(conn)

    def _visitor_tail(self, conn: sqlite3.Connection, user_fingerprint: str, partition: int) -> list[Touch]:
        position = conn.execute(Q["partition_position"], (partition,)).fetchone()
        if position is None:
            return []
        params = {"horizon": position[0], "applied": position[1], "slot": slot_of(user_fingerprint),
                  "fp": user_fingerprint, "partitions": 1, "step": JOURNEY_STEP_TYPE}
        return [_log_entry(row).touch for row in conn.execute(Q["visitor_tail"], params).fetchall()]

    # ------------------------------------------------------------------ the data lifecycle

    def _purge_step_blocking(self, conn: sqlite3.Connection, table: str, cutoff: dt.datetime, limit: int,
                             resume: Any) -> PurgeStep:
        params = {"cutoff": format_timestamp(cutoff), "limit": limit, "after": resume}
        with self._transaction(conn):
            if table in _PURGE_BY_TIME:
                deleted = conn.execute(_PURGE_BY_TIME[table], params).rowcount
                return PurgeStep(deleted, True if deleted == limit else None)  # fewer than asked: none left
            first_keys, keys_after = _PURGE_KEYS[table]
            keys = conn.execute(first_keys if resume is None else keys_after, params).fetchall()
            if not keys:
                return PurgeStep(0, None)
            span = {"first": keys[0][0], "last": keys[-1][0], "cutoff": params["cutoff"]}
            if table == "customer_journeys":
                deleted = conn.execute(Q["purge_journeys"], span).rowcount
            else:
                retired = conn.execute(Q["purge_sessions"], span).fetchall()
                deleted = len(retired)
                seconds: dict[str, float] = {}
                for fp, s in retired:
                    seconds[fp] = seconds.get(fp, 0.0) + s
                conn.executemany(Q["retire_session_seconds"],
                                 [(s, fp) for fp, s in sorted(seconds.items())])
        return PurgeStep(deleted, keys[-1][0] if len(keys) == limit else None)

    def _erase_events(self, conn: sqlite3.Connection, user_fingerprint: str, since_txn: int | None) -> dict[str, int]:
        if since_txn is None:
            n = conn.execute(Q["erase_events"], (user_fingerprint,)).rowcount
        else:
            n = conn.execute(Q["erase_events_since"], (since_txn, user_fingerprint)).rowcount
        return {"analytics_events": n}

    def _erase_letters(self, conn: sqlite3.Connection, needles: tuple[str, str]) -> int:
        return conn.execute(Q["erase_dead_letters"], needles).rowcount

    def _fence_partition(self, conn: sqlite3.Connection, partition: int) -> None:
        conn.execute(Q["fence_partition"],
                     (format_timestamp(dt.datetime.now(dt.UTC)), partition))

    def _erase_derived(self, conn: sqlite3.Connection, user_fingerprint: str) -> dict[str, int]:
        return {table: conn.execute(sql, (user_fingerprint,)).rowcount
                for table, sql in _ERASE_DERIVED.items()}

    def _rejected_page_blocking(self, conn: sqlite3.Connection, limit: int, before: int | None) -> list[RejectedLetter]:
        sql = Q["rejected_page"] if before is None else Q["rejected_page_before"]
        rows = conn.execute(sql, {"before": before, "limit": limit}).fetchall()
        return [RejectedLetter(i, letter, parse_timestamp(at), _optional_datetime(last), times, source,
                               orjson.loads(reasons), payload)
                for i, letter, at, last, times, source, reasons, payload in rows]


#: The retention janitor's batches (``Storage.purge_step``); see postgres.py's for the reasons.
#: The retention janitor's batches (``Storage.purge_step``), by table: through a time index...
_PURGE_BY_TIME = {
    "analytics_events": Q["purge_events"],
    "ml_predictions": Q["purge_predictions"],
    "rejected_events": Q["purge_dead_letters"],
}
#: ... or walking the primary key: the first keys, and those after a key.
_PURGE_KEYS = {
    "analytics_sessions": (Q["session_keys"], Q["session_keys_after"]),
    "customer_journeys": (Q["journey_keys"], Q["journey_keys_after"]),
}
#: An erasure's derived rows, by table: the profile first.
_ERASE_DERIVED = {
    "user_behavior_profiles": Q["erase_profile"],
    "ml_predictions": Q["erase_predictions"],
    "analytics_sessions": Q["erase_sessions"],
    "customer_journeys": Q["erase_journeys"],
    "visitor_active_days": Q["erase_days"],
}


def _funnel_sql(steps: int, types: int) -> str:
    """The funnel of ``steps`` steps over ``types`` event types as one statement (see
    ``sql/sqlite/queries/funnel.sql``)."""
    ctes = [
        Q["funnel_events"].replace("{types}", ", ".join(f":type{i}" for i in range(types))),
        Q["funnel_first_step"],
    ]
    ctes += [
        Q["funnel_next_step"].replace("{k}", str(k)).replace("{prev}", str(k - 1))
        for k in range(2, steps + 1)
    ]
    figures = [Q["funnel_step_figures"].replace("{k}", str(k)) for k in range(1, steps + 1)]
    return "WITH " + ",\n".join(ctes) + "\nSELECT " + ",\n".join(figures)


@contextlib.contextmanager
def _read_snapshot(conn: sqlite3.Connection) -> Iterator[None]:
    """A read transaction: its statements see one state of the database, and take no write lock."""
    if conn.in_transaction:  # within another: that one's snapshot
        yield
        return
    conn.execute("BEGIN DEFERRED")
    try:
        yield
    finally:
        if conn.in_transaction:
            conn.execute("COMMIT")



def _journey_row(row: tuple[Any, ...]) -> JourneyRow:
    """A ``select_journey`` row as ``merge_journey`` takes it."""
    points, stage, first, first_at, last, last_at, started, updated = row
    return JourneyRow(
        orjson.loads(points), stage, first, _optional_datetime(first_at), last,
        _optional_datetime(last_at), parse_timestamp(started), parse_timestamp(updated),
    )

def _profile_state(row: tuple[Any, ...]) -> ProfileState:
    (fp, events, sessions, views, started, bookings, value, first, last, booked, seconds, days, counts,
     segment, engagement, lead, churn, price, updated, devices, customer_id, customer_id_at, version) = row
    return ProfileState(
        user_fingerprint=fp, total_events=events, total_sessions=sessions, total_page_views=views,
        bookings_started=started, total_bookings=bookings, total_value=value,
        first_seen=_optional_datetime(first), last_seen=_optional_datetime(last),
        last_booking_at=_optional_datetime(booked), total_session_seconds=seconds, days_active=days,
        event_counts=orjson.loads(counts), segment=segment, scores=stored_scores(engagement, lead, churn, price),
        updated_at=_optional_datetime(updated), device_counts=orjson.loads(devices), customer_id=customer_id,
        customer_id_at=_optional_datetime(customer_id_at), version=version,
    )


def _log_entry(row: tuple[Any, ...]) -> LogEntry:
    txn, partition, fp, event_id, event_type, session_id, at, page, referrer, value, properties, device, user_id = row
    touch = Touch(sys.intern(event_type), sys.intern(session_id), parse_timestamp(at),
                  None if page is None else sys.intern(page), referrer, value,
                  orjson.loads(properties) if properties else {}, device, user_id)
    return LogEntry(txn, partition, fp, event_id, touch)
