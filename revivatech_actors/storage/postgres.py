"""PostgreSQL storage through psycopg 3's *blocking* API in worker threads.

psycopg's async API does not run under trio (it needs an asyncio loop), so calls go through
``trio.to_thread.run_sync`` with one ``CapacityLimiter(1)`` per connection (see ``_connections``). One
exception, the hot path: a batch of events without dead letters is one statement, sent and awaited
on the event loop itself through libpq's non-blocking API (``_execute_on_loop``): under load a
thread hop costs several milliseconds of waiting for the GIL each way (docs/performance.md). This
is the only module of the project that imports psycopg, beside ``original.py`` (the original
service's tables, read by ``import-original``).

Connections run in autocommit mode; transactions are explicit (``conn.transaction()``), so no
session is ever left "idle in transaction" after a read.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import functools
import hashlib
import logging
import math
import os
import sys
import weakref
from collections.abc import Iterator, Sequence
from typing import Any

import orjson
import psycopg
import psycopg.conninfo
import psycopg.errors
import psycopg.pq
import psycopg.types.json
import trio

from ..domain.funnel import FunnelQuery, FunnelStep
from ..domain.journeys import JOURNEY_STEP_TYPE, STAGES
from ..domain.partitions import slot_of
from ..domain.profiles import ProfileDelta, ProfileState, Touch, journey_rows, sessions_of
from ..domain.realtime import BUCKET_SECONDS
from ..domain.scoring import MODEL_TYPES, ScoreRecord
from ..messages import DeadLetter, Event
from ._errors import QueryTimeout, StorageError, StorageUnavailable
from ._interface import Storage
from ._lifecycle import PurgeStep, RejectedLetter
from ._messages import first_line, mask_password
from ._queries import load_queries
from ._records import (
    EVENT_EXTRA_COLUMNS,
    LogEntry,
    PartitionPosition,
    RealtimeSeed,
    StoredJourney,
    StoredPrediction,
    VisitorKeys,
    event_extra_items,
    event_extra_values,
    profile_delta_row,
    score_record_row,
    session_delta_row,
    stored_scores,
)
from ._reports import BookingEvent, DailyRevenue, ProfilesPage, VisitorCounts
from .migrations import AppliedMigration, Migration

logger = logging.getLogger(__name__)

#: The named queries of ``sql/postgres/queries/*.sql``.
Q = load_queries("postgres")

#: Key of the transaction-level advisory lock that serialises migrations across processes: the
#: first 8 bytes of sha256("revivatech_actors.schema_migrations") as a signed bigint, so it is
#: stable and unlikely to collide with another application's advisory locks in the same database.
MIGRATION_LOCK_KEY = int.from_bytes(
    hashlib.sha256(b"revivatech_actors.schema_migrations").digest()[:8], "big", signed=True
)
#: Key of the transaction-level advisory lock that serialises changes to the set of partitions.
PARTITIONS_LOCK_KEY = int.from_bytes(
    hashlib.sha256(b"revivatech_actors.profile_partitions").digest()[:8], "big", signed=True
)

#: libpq counts connect_timeout in whole seconds and treats anything below 2 as 2; ``open()``
#: enforces the exact float timeout itself with trio, this only bounds reconnects in threads.
_LIBPQ_MIN_CONNECT_TIMEOUT = 2

#: TCP keepalives (unless the URL sets its own): a writer blocked on a peer that vanished without
#: closing the connection notices within about idle + interval * count = 60 s instead of hours.
_KEEPALIVES = {
    "keepalives": 1,
    "keepalives_idle": 30,
    "keepalives_interval": 10,
    "keepalives_count": 3,
}

#: SQLSTATE classes meaning "the server cannot serve us now" rather than "this statement is
#: wrong": 08 connection exception, 53 insufficient resources (e.g. too many connections),
#: 57P operator intervention (admin/crash shutdown, cannot connect now).
_UNAVAILABLE_SQLSTATES = ("08", "53", "57P")

#: The extra columns (``EVENT_EXTRA_COLUMNS``) with their types, staged as they are stored.
_EXTRA_TYPES = {"time_on_page": "float8", "time_since_last_event": "float8"}
_CREATE_STAGING = Q["create_staging"].replace(
    "{extra}", ", ".join(f"{c} {_EXTRA_TYPES.get(c, 'text')}" for c in EVENT_EXTRA_COLUMNS)
)
_COPY_STAGING = Q["copy_staging"].replace("{extra}", ", ".join(EVENT_EXTRA_COLUMNS))
_STAGING_TYPES = [
    *("int4", "text", "text", "text", "text", "timestamptz", "timestamptz", "timestamptz"),
    *("text", "text", "float8", "text", "int4"),
    *(_EXTRA_TYPES.get(c, "text") for c in EVENT_EXTRA_COLUMNS),
]


def _store_events_sql(source: str, extra: tuple[str, ...]) -> str:
    """``store_events`` reading ``source``, which holds the core columns and ``extra``."""
    listed = "".join(f", {c}" for c in extra)
    cast = listed.replace("ip_address", "ip_address::inet")
    return (
        Q["store_events"]
        .replace("{source}", source)
        .replace("{extra}", listed)
        .replace("{extra_cast}", cast)
    )


_STORE_EVENTS = _store_events_sql("staging_events", EVENT_EXTRA_COLUMNS)


@functools.lru_cache(maxsize=64)
def _store_events_json_sql(extra: tuple[str, ...]) -> tuple[str, bytes]:
    """``store_events`` reading a batch from one JSON parameter (``events_json_source``), whose
    record declares only the extra columns the batch holds (``extra``): the statement for
    psycopg, and the same for ``_execute_on_loop`` in libpq's placeholders."""
    declared = "".join(f", {c} {_EXTRA_TYPES.get(c, 'text')}" for c in extra)
    source = Q["events_json_source"].replace("{declared}", declared)
    sql = _store_events_sql(source, extra)
    return sql, sql.replace("%(events)s", "$1").replace("%(count)s", "$2").encode()


def _funnel_sql(steps: int) -> str:
    """The funnel of ``steps`` steps as one statement (see ``sql/postgres/queries/funnel.sql``):
    the step count shapes the text, every value is a parameter."""
    ctes = [Q["funnel_events"], Q["funnel_first_step"]]
    ctes += [
        Q["funnel_next_step"].replace("{k}", str(k)).replace("{prev}", str(k - 1))
        for k in range(2, steps + 1)
    ]
    figures = [Q["funnel_step_figures"].replace("{k}", str(k)) for k in range(1, steps + 1)]
    return "WITH " + ",\n".join(ctes) + "\nSELECT " + ",\n".join(figures)


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
#: An erasure's derived rows, by table: the profile first (a record that read it before waits
#: on its row).
_ERASE_DERIVED = {
    "user_behavior_profiles": Q["erase_profile"],
    "ml_predictions": Q["erase_predictions"],
    "analytics_sessions": Q["erase_sessions"],
    "customer_journeys": Q["erase_journeys"],
    "visitor_active_days": Q["erase_days"],
}

class PostgresStorage(Storage):
    """Storage in a PostgreSQL database (tables in the connection's current schema)."""

    engine = "postgresql"
    migrations_folder = "postgres"
    parallel_writes = True
    announces_log = True
    _driver_errors = (psycopg.Error,)
    _queries = Q
    # DataError covers what psycopg refuses client-side too (e.g. a NUL character in text).
    _row_errors = (psycopg.DataError, psycopg.IntegrityError)

    def __init__(self, url: str, **options: Any) -> None:
        """See ``Storage.__init__`` for ``options``; the URL is parsed (not connected) here."""
        super().__init__(url, **options)
        try:
            params = psycopg.conninfo.conninfo_to_dict(url)
        except psycopg.Error as exc:
            msg = f"invalid PostgreSQL URL {mask_password(url)!r}: {first_line(exc)}"
            raise ValueError(msg) from None
        self._params = params
        self._listening: weakref.WeakSet[psycopg.Connection[Any]] = weakref.WeakSet()  # connections that LISTEN
        host = params.get("host") or os.environ.get("PGHOST") or "localhost"
        port = params.get("port") or os.environ.get("PGPORT") or "5432"
        self._host_port = f"{host}:{port}"

    def _where(self) -> str:
        return f"PostgreSQL at {self._host_port}"

    def _connect(self, purpose: str) -> psycopg.Connection[Any]:
        options: dict[str, Any] = {
            key: value for key, value in _KEEPALIVES.items() if key not in self._params
        }
        if "application_name" not in self._params:
            options["application_name"] = f"revivatech-actors {purpose}"
        if "connect_timeout" not in self._params:
            options["connect_timeout"] = max(
                _LIBPQ_MIN_CONNECT_TIMEOUT, math.ceil(self.connect_timeout)
            )
        conn = psycopg.connect(self._url, autocommit=True, **options)
        psycopg.types.json.set_json_loads(orjson.loads, conn)
        if purpose == "writer":
            conn.execute(_CREATE_STAGING)
        return conn

    def _is_usable(self, conn: psycopg.Connection[Any]) -> bool:
        return not (conn.closed or conn.broken)

    def _close_connection(self, conn: psycopg.Connection[Any]) -> None:
        conn.close()

    def _translate_error(self, exc: Exception) -> StorageError:
        message = f"{self._where()}: {first_line(exc)}"
        sqlstate = getattr(exc, "sqlstate", None)
        if isinstance(exc, psycopg.InterfaceError) or (
            isinstance(exc, psycopg.OperationalError)
            and (sqlstate is None or sqlstate.startswith(_UNAVAILABLE_SQLSTATES))
        ):
            return StorageUnavailable(message)
        return StorageError(message)

    def _ping_blocking(self, conn: psycopg.Connection[Any]) -> None:
        conn.execute(Q["ping"]).fetchone()

    def _table_names_blocking(self, conn: psycopg.Connection[Any]) -> set[str]:
        rows = conn.execute(Q["table_names"]).fetchall()
        return {name for (name,) in rows}

    @contextlib.contextmanager
    def _transaction(self, conn: psycopg.Connection[Any]) -> Iterator[None]:
        with conn.transaction():
            yield

    def _lock_migrations(self, conn: psycopg.Connection[Any]) -> None:
        # Held until this transaction ends; a second migrating process waits here, then reads
        # the applied set only after the first committed, so it never applies a file twice.
        conn.execute(Q["lock_migrations"], (MIGRATION_LOCK_KEY,))

    def _ensure_migrations_table(self, conn: psycopg.Connection[Any]) -> None:
        if conn.execute(Q["migrations_table_exists"]).fetchone()[0] is None:
            conn.execute(Q["create_migrations_table"])

    def _read_applied(self, conn: psycopg.Connection[Any]) -> list[AppliedMigration]:
        if conn.execute(Q["migrations_table_exists"]).fetchone()[0] is None:
            return []
        rows = conn.execute(Q["applied_migrations"]).fetchall()
        return [
            AppliedMigration(version=v, name=n, checksum=c, applied_at=at.astimezone(dt.timezone.utc))
            for v, n, c, at in rows
        ]

    def _execute_script(self, conn: psycopg.Connection[Any], sql: str) -> None:
        # Without parameters psycopg sends the text as one simple query, so a file may hold many
        # statements; they run inside the caller's transaction.
        conn.execute(sql)  # type: ignore[arg-type]  # trusted file shipped with the package

    def _record_migration(self, conn: psycopg.Connection[Any], migration: Migration) -> AppliedMigration:
        (applied_at,) = conn.execute(
            Q["record_migration"],
            (migration.version, migration.name, migration.checksum),
        ).fetchone()
        return AppliedMigration(
            version=migration.version,
            name=migration.name,
            checksum=migration.checksum,
            applied_at=applied_at.astimezone(dt.timezone.utc),
        )

    def _store_events(self, conn: psycopg.Connection[Any], events: Sequence[Event]) -> set[str]:
        with conn.cursor() as cursor:
            with cursor.copy(_COPY_STAGING) as copy:
                copy.set_types(_STAGING_TYPES)
                for seq, e in enumerate(events):
                    copy.write_row(
                        (
                            seq, e.event_id, e.user_fingerprint, e.session_id, e.event_type, e.timestamp,
                            e.received_at, e.sent_at, e.page_url, e.referrer, e.value, orjson.dumps(e.properties).decode(),
                            slot_of(e.user_fingerprint), *event_extra_values(e),
                        )
                    )
            # The staging rows vanish at commit or rollback (ON COMMIT DELETE ROWS), and every
            # attempt, bisected ones included, is a transaction of its own.
            cursor.execute(_STORE_EVENTS, {"count": len(events)})
            _, not_inserted = cursor.fetchone()
            return _inserted(events, not_inserted)

    def _log_txn(self, conn: psycopg.Connection[Any]) -> int:
        return conn.execute(Q["log_txn"]).fetchone()[0]

    def _store_in_one_statement(self, conn: psycopg.Connection[Any], events: Sequence[Event]) -> tuple[set[str], int] | None:
        rows, extra = _events_json(events)
        statement, _ = _store_events_json_sql(extra)
        txn, not_inserted = conn.execute(statement, {"events": rows.decode(), "count": len(events)}).fetchone()
        return _inserted(events, not_inserted), int(txn)

    async def _store_on_loop(self, lane: Any, events: Sequence[Event]) -> tuple[set[str], int] | None:
        conn = self._claim_lane(lane)
        if conn is None:
            return None
        broken = True  # until the exchange is over: a cancellation leaves the connection mid-protocol
        try:
            rows, extra = _events_json(events)
            _, statement = _store_events_json_sql(extra)
            params = [rows, str(len(events)).encode()]
            try:
                result = await _execute_on_loop(conn.pgconn, statement, params)
            except psycopg.Error as exc:  # the connection failed: nothing is known of the commit
                raise self._translate_error(exc) from exc
            broken = False
            if result.status != psycopg.pq.ExecStatus.TUPLES_OK:
                error = psycopg.errors.error_from_result(result, encoding=conn.info.encoding)
                if isinstance(error, self._row_errors):
                    return None  # rolled back: the worker thread's path isolates the refused rows
                raise self._translate_error(error) from error
            return _inserted(events, result.get_value(0, 1).decode()), int(result.get_value(0, 0))
        finally:
            await self._release_lane(lane, broken=broken)

    def _received_times_blocking(self, conn: psycopg.Connection[Any], event_ids: list[str]) -> dict[str, dt.datetime]:
        rows = conn.execute(Q["received_times"], (event_ids,)).fetchall()
        return {event_id: received_at for event_id, received_at in rows}

    def _insert_dead_letters(self, conn: psycopg.Connection[Any], letters: Sequence[DeadLetter]) -> None:
        with conn.cursor() as cursor:
            cursor.executemany(
                Q["insert_dead_letter"],
                [
                    # PostgreSQL text cannot hold NUL; keep the payload, visibly escaped.
                    (d.letter_id, d.received_at, d.source, orjson.dumps(d.reasons).decode(), d.payload.replace("\x00", "\\u0000"))
                    for d in letters
                ],
            )

    def _upsert_profiles(self, conn: psycopg.Connection[Any], deltas: Sequence[ProfileDelta],
                         max_touchpoints: int, return_rows: bool) -> dict[str, ProfileState]:
        profiles = orjson.dumps([profile_delta_row(d) for d in deltas]).decode()
        journeys = [row for d in deltas for row in journey_rows(d)]
        for row in journeys:
            if len(row["touchpoints"]) > max_touchpoints:
                row["touchpoints"] = row["touchpoints"][:max_touchpoints]
        sessions = orjson.dumps([session_delta_row(row) for row in sessions_of(deltas)]).decode()
        conn.execute(Q["upsert_profiles"], {"deltas": profiles, "journeys": orjson.dumps(journeys).decode(),
                                        "sessions": sessions, "max_touchpoints": max_touchpoints,
                                        "stages": list(STAGES)})
        # Read after the statement, not RETURNING from it: its session time sums the session rows
        # the statement itself updated, which its own subqueries would not see.
        return self._load_profiles_blocking(conn, [d.user_fingerprint for d in deltas]) if return_rows else {}

    def _load_profiles_blocking(self, conn: psycopg.Connection[Any], user_fingerprints: list[str]) -> dict[str, ProfileState]:
        rows = conn.execute(Q["load_profiles"], (user_fingerprints,)).fetchall()
        return {row[0]: _profile_state(row) for row in rows}

    def _profiles_to_rescore_blocking(self, conn: psycopg.Connection[Any], scored_before: dt.datetime,
                                      limit: int) -> list[ProfileState]:
        return [_profile_state(row) for row in conn.execute(Q["profiles_to_rescore"], (scored_before, limit)).fetchall()]

    def _record_scores(self, conn: psycopg.Connection[Any], records: Sequence[ScoreRecord]) -> None:
        conn.execute(Q["record_scores"], (orjson.dumps([score_record_row(r) for r in records]).decode(),))

    def _recent_predictions_blocking(self, conn: psycopg.Connection[Any], user_fingerprint: str,
                                     limit: int) -> list[StoredPrediction]:
        params = {"models": list(MODEL_TYPES), "fp": user_fingerprint, "limit": limit}
        rows = conn.execute(Q["recent_predictions"], params).fetchall()
        return [StoredPrediction(model, value, confidence, factors, created) for model, value, confidence, factors, created in rows]

    def _load_journeys_blocking(self, conn: psycopg.Connection[Any], user_fingerprint: str) -> list[StoredJourney]:
        rows = conn.execute(Q["load_journeys"], (user_fingerprint,)).fetchall()
        return [StoredJourney(sid, touchpoints, stage, first, last, started, updated)
                for sid, touchpoints, stage, first, last, started, updated in rows]

    def _funnel_blocking(self, conn: psycopg.Connection[Any], query: FunnelQuery, timeout: float) -> list[FunnelStep]:
        params = _funnel_params(query)
        try:
            with conn.transaction():
                conn.execute(Q["funnel_timeout"], (f"{max(1, round(timeout * 1000))}ms",))
                conn.execute(Q["funnel_no_nested_loops"])
                row = conn.execute(_funnel_sql(len(query.steps)), params).fetchone()
        except psycopg.errors.QueryCanceled as exc:
            msg = f"{self._where()}: the funnel took longer than {timeout:g} s and was cancelled"
            raise QueryTimeout(msg) from exc
        assert row is not None
        return [FunnelStep(row[2 * i], row[2 * i + 1]) for i in range(len(query.steps))]

    def _realtime_seed_blocking(self, conn: psycopg.Connection[Any], since: dt.datetime, page_types: list[str],
                                conversion_types: list[str]) -> RealtimeSeed:
        params = {"since": since, "bucket": BUCKET_SECONDS, "pages": page_types, "conversions": conversion_types}
        with conn.transaction():  # one snapshot for the four answers
            counts = conn.execute(Q["realtime_counts"], params).fetchall()
            pages = conn.execute(Q["realtime_pages"], params).fetchall()
            users = conn.execute(Q["realtime_newest_by_visitor"], params).fetchall()
            sessions = conn.execute(Q["realtime_newest_by_session"], params).fetchall()
        return RealtimeSeed([tuple(row) for row in counts], [tuple(row) for row in pages], dict(users), dict(sessions))

    def _visitor_keys_blocking(self, conn: psycopg.Connection[Any], user_fingerprint: str) -> VisitorKeys:
        rows = conn.execute(Q["visitor_keys"], {"fp": user_fingerprint}).fetchall()
        return VisitorKeys(
            sessions=frozenset(key for kind, key in rows if kind == "session"),
            days=frozenset(dt.date.fromisoformat(key) for kind, key in rows if kind == "day"),
        )

    def _profiles_page_blocking(self, conn: psycopg.Connection[Any], offset: int, limit: int) -> ProfilesPage:
        with conn.transaction():  # the count and the page of one snapshot
            (total,) = conn.execute(Q["count_profiles"]).fetchone()
            rows = conn.execute(Q["profiles_page"], {"offset": offset, "limit": limit}).fetchall()
        return ProfilesPage(total, [_profile_state(row) for row in rows])

    def _top_profiles_blocking(self, conn: psycopg.Connection[Any], since: dt.datetime, limit: int) -> list[ProfileState]:
        return [_profile_state(row) for row in conn.execute(Q["top_profiles"], {"since": since, "limit": limit}).fetchall()]

    def _visitor_counts_blocking(self, conn: psycopg.Connection[Any], since: dt.datetime) -> VisitorCounts:
        active, new = conn.execute(Q["visitor_counts"], {"since": since}).fetchone()
        return VisitorCounts(active, new)

    def _revenue_by_day_blocking(self, conn: psycopg.Connection[Any], since: dt.datetime, until: dt.datetime,
                                 types: list[str]) -> list[DailyRevenue]:
        rows = conn.execute(Q["revenue_by_day"], {"types": types, "since": since, "until": until}).fetchall()
        return [DailyRevenue(day, revenue, orders) for day, revenue, orders in rows]

    def _booking_events_blocking(self, conn: psycopg.Connection[Any], since: dt.datetime, until: dt.datetime,
                                 types: list[str], limit: int) -> list[BookingEvent]:
        params = {"types": types, "since": since, "until": until, "limit": limit}
        return [BookingEvent(*row) for row in conn.execute(Q["booking_events"], params).fetchall()]


    # ------------------------------------------------------------------ the log and its partitions

    def _record_positions(self, conn: psycopg.Connection[Any], owner: str | None,
                          positions: Sequence[PartitionPosition]) -> int:
        rows = [{"partition": p.partition, "epoch": p.epoch, "writes": p.writes, "horizon": p.horizon,
                 "applied": sorted(p.applied)} for p in positions]
        return conn.execute(Q["record_positions"], {"positions": orjson.dumps(rows).decode(), "owner": owner}).rowcount

    def _partition_rows(self, conn: psycopg.Connection[Any], partitions: list[int]) -> dict[int, tuple[str | None, int, int]]:
        rows = conn.execute(Q["partition_rows"],
                            (partitions,)).fetchall()
        return {partition: (owner, epoch, writes) for partition, owner, epoch, writes in rows}

    def _lock_partitions(self, conn: psycopg.Connection[Any]) -> None:
        conn.execute(Q["lock_partitions"], (PARTITIONS_LOCK_KEY,))

    def _partition_count(self, conn: psycopg.Connection[Any]) -> int:
        return conn.execute(Q["partition_count"]).fetchone()[0]

    def _create_partitions(self, conn: psycopg.Connection[Any], partitions: range) -> None:
        bounds = (partitions.start, partitions.stop - 1)
        conn.execute(Q["create_partitions"], bounds)
        conn.execute(Q["create_leases"], bounds)

    def _split_partitions(self, conn: psycopg.Connection[Any], held: int, count: int) -> None:
        conn.execute(Q["split_partitions"], {"held": held, "count": count})
        conn.execute(Q["split_leases"], (held, count))
        conn.execute(Q["release_all_leases"])

    def _live_leases(self, conn: psycopg.Connection[Any]) -> int:
        return conn.execute(Q["live_leases"]).fetchone()[0]

    def _lease_heartbeat(self, conn: psycopg.Connection[Any], owner: str, ttl: float) -> None:
        conn.execute(Q["lease_heartbeat"], {"owner": owner, "ttl": ttl})
        conn.execute(Q["forget_owners"])

    def _lease_release(self, conn: psycopg.Connection[Any], owner: str, partitions: list[int]) -> None:
        conn.execute(Q["lease_release"], (owner, partitions))

    def _lease_renew(self, conn: psycopg.Connection[Any], owner: str, ttl: float) -> dict[int, int]:
        return dict(conn.execute(Q["lease_renew"], {"owner": owner, "ttl": ttl}).fetchall())

    def _live_owners(self, conn: psycopg.Connection[Any]) -> int:
        return conn.execute(Q["live_owners"]).fetchone()[0]

    def _lease_claim(self, conn: psycopg.Connection[Any], owner: str, ttl: float, want: int) -> list[PartitionPosition]:
        rows = conn.execute(Q["lease_claim"], {"owner": owner, "ttl": ttl, "want": want}).fetchall()
        return [PartitionPosition(partition, epoch, writes, horizon, frozenset(applied))
                for partition, epoch, writes, horizon, applied in rows]

    def _leave_blocking(self, conn: psycopg.Connection[Any], owner: str) -> None:
        with conn.transaction():
            conn.execute(Q["leave_leases"], (owner,))
            conn.execute(Q["leave_owners"], (owner,))

    def _announce_log_blocking(self, conn: psycopg.Connection[Any]) -> None:
        conn.execute(Q["announce_log"])

    def _wait_for_log_blocking(self, conn: psycopg.Connection[Any], timeout: float) -> bool:
        if conn not in self._listening:  # a new connection (the first, or after a reconnect)
            conn.execute(Q["listen_log"])
            self._listening.add(conn)
        # each announcement queued meanwhile wakes a later call at once; the owner coalesces them
        return any(True for _ in conn.notifies(timeout=timeout, stop_after=1))

    def _log_horizon(self, conn: psycopg.Connection[Any]) -> int:
        return conn.execute(Q["log_horizon"]).fetchone()[0]

    def _log_rows(self, conn: psycopg.Connection[Any], cursors: list[PartitionPosition], partitions: int,
                  ranges: list[tuple[int, int]], limit: int | None) -> list[LogEntry]:
        rows = [{"partition": c.partition, "horizon": c.horizon, "applied": list(c.applied)}
                for c in cursors]
        params = {"cursors": orjson.dumps(rows).decode(), "partitions": partitions, "step": JOURNEY_STEP_TYPE,
                  "lows": [low for low, _ in ranges], "highs": [high for _, high in ranges]}
        sql = Q["log_rows"] if limit is None else Q["log_rows"] + f" LIMIT {int(limit)}"
        return [_log_entry(row) for row in conn.execute(sql, params).fetchall()]

    @contextlib.contextmanager
    def _read_snapshot(self, conn: psycopg.Connection[Any]) -> Iterator[None]:
        with conn.transaction():
            conn.execute(Q["repeatable_read"])
            yield

    def _visitor_tail(self, conn: psycopg.Connection[Any], user_fingerprint: str, partition: int) -> list[Touch]:
        position = conn.execute(Q["partition_position"], (partition,)).fetchone()
        if position is None:
            return []
        params = {"horizon": position[0], "applied": position[1], "slot": slot_of(user_fingerprint),
                  "fp": user_fingerprint, "partitions": 1, "step": JOURNEY_STEP_TYPE}
        return [_log_entry(row).touch for row in conn.execute(Q["visitor_tail"], params).fetchall()]

    # ------------------------------------------------------------------ the data lifecycle

    def _purge_step_blocking(self, conn: psycopg.Connection[Any], table: str, cutoff: dt.datetime, limit: int,
                             resume: Any) -> PurgeStep:
        if table in _PURGE_BY_TIME:
            deleted = conn.execute(_PURGE_BY_TIME[table], {"cutoff": cutoff, "limit": limit}).rowcount
            return PurgeStep(deleted, True if deleted == limit else None)  # fewer than asked: none left
        first_keys, keys_after = _PURGE_KEYS[table]
        with conn.transaction():
            keys = conn.execute(first_keys if resume is None else keys_after,
                                {"after": resume, "limit": limit}).fetchall()
            if not keys:
                return PurgeStep(0, None)
            span = {"first": keys[0][0], "last": keys[-1][0], "cutoff": cutoff}
            if table == "customer_journeys":
                deleted = conn.execute(Q["purge_journeys"], span).rowcount
            else:
                retired = conn.execute(Q["purge_sessions"], span).fetchall()
                deleted = len(retired)
                _retire_session_seconds(conn, retired)
        return PurgeStep(deleted, keys[-1][0] if len(keys) == limit else None)

    def _erase_events(self, conn: psycopg.Connection[Any], user_fingerprint: str,
                      since_txn: int | None) -> dict[str, int]:
        if "\x00" in user_fingerprint:  # no text column can hold it (asking fails as if PostgreSQL were away)
            return {"analytics_events": 0}
        if since_txn is None:
            n = conn.execute(Q["erase_events"], (user_fingerprint,)).rowcount
        else:
            n = conn.execute(Q["erase_events_since"], (since_txn, user_fingerprint)).rowcount
        return {"analytics_events": n}

    def _erase_letters(self, conn: psycopg.Connection[Any], needles: tuple[str, str]) -> int:
        return conn.execute(Q["erase_dead_letters"], needles).rowcount

    def _fence_partition(self, conn: psycopg.Connection[Any], partition: int) -> None:
        conn.execute(Q["fence_partition"], (partition,))

    def _erase_derived(self, conn: psycopg.Connection[Any], user_fingerprint: str) -> dict[str, int]:
        if "\x00" in user_fingerprint:  # no row can be the visitor's: see _erase_events
            return dict.fromkeys(_ERASE_DERIVED, 0)
        conn.execute(Q["hold_back_scores"])  # see lifecycle.sql: no score record brings it back
        return {table: conn.execute(sql, (user_fingerprint,)).rowcount
                for table, sql in _ERASE_DERIVED.items()}

    def _rejected_page_blocking(self, conn: psycopg.Connection[Any], limit: int,
                                before: int | None) -> list[RejectedLetter]:
        sql = Q["rejected_page"] if before is None else Q["rejected_page_before"]
        rows = conn.execute(sql, {"before": before, "limit": limit}).fetchall()
        return [RejectedLetter(*row) for row in rows]


def _retire_session_seconds(conn: psycopg.Connection[Any], retired: list[tuple[str, float]]) -> None:
    """Add the deleted sessions' time to their profiles, locking the profiles in key order (as
    profile writes and the scorer lock them: no deadlock)."""
    seconds: dict[str, float] = {}
    for fp, s in retired:
        seconds[fp] = seconds.get(fp, 0.0) + s
    if not seconds:
        return
    fps = sorted(seconds)
    conn.execute(Q["lock_retiring_profiles"], (fps,))
    conn.execute(Q["retire_session_seconds"], (fps, [seconds[fp] for fp in fps]))


def _funnel_params(query: FunnelQuery) -> dict[str, Any]:
    params: dict[str, Any] = {
        "types": sorted(set(query.steps)), "start": query.start, "end": query.end,
        "horizon": query.end + dt.timedelta(seconds=query.window), "window": query.window,
    }
    for k, step in enumerate(query.steps, 1):
        params[f"step{k}"] = step
        if k > 1:
            params[f"window{k}"] = query.step_windows[k - 2] if query.step_windows else query.window
    return params


def _events_json(events: Sequence[Event]) -> tuple[bytes, tuple[str, ...]]:
    """``events`` as the JSON array ``_store_events_json_sql`` unpacks (``seq`` keeping their
    order), and which of ``EVENT_EXTRA_COLUMNS`` it holds, in their order."""
    rows = []
    present: set[str] = set()
    for seq, e in enumerate(events):
        row = {
            "seq": seq, "event_id": e.event_id, "user_fingerprint": e.user_fingerprint, "session_id": e.session_id,
            "event_type": e.event_type, "event_timestamp": e.timestamp, "received_at": e.received_at,
            "sent_at": e.sent_at, "page_url": e.page_url, "referrer": e.referrer, "value": e.value,
            "properties": e.properties, "log_slot": slot_of(e.user_fingerprint),
        }
        extra = event_extra_items(e)
        if extra:
            row.update(extra)
            present.update(extra)
        rows.append(row)
    return orjson.dumps(rows), tuple(c for c in EVENT_EXTRA_COLUMNS if c in present)


async def _execute_on_loop(pgconn: psycopg.pq.abc.PGconn, query: bytes, params: list[bytes]) -> psycopg.pq.abc.PGresult:
    """Run one statement (text parameters, text results) on ``pgconn`` — in non-blocking mode,
    as psycopg keeps its connections — waiting for its socket on the trio loop, and return its
    result. Raises psycopg.OperationalError when the connection fails; cancellation leaves the
    connection mid-protocol (close it)."""
    pgconn.send_query_params(query, params)
    fd = pgconn.socket
    while pgconn.flush():  # 1: part of the query is still to be sent
        await trio.lowlevel.wait_writable(fd)
    result = None
    while True:
        pgconn.consume_input()
        while pgconn.is_busy():
            await trio.lowlevel.wait_readable(fd)
            pgconn.consume_input()
        last = pgconn.get_result()
        if last is None:  # ready for the next query
            assert result is not None
            return result
        result = last


def _inserted(events: Sequence[Event], not_inserted: str) -> set[str]:
    """The ids of ``events`` a store statement inserted, from the ids it says it did not
    (comma-separated)."""
    ids = {e.event_id for e in events}
    return ids.difference(not_inserted.split(",")) if not_inserted else ids


def _profile_state(row: tuple[Any, ...]) -> ProfileState:
    (fp, events, sessions, page_views, started, bookings, value, first, last, last_booking, seconds, days, counts,
     segment, engagement, lead, churn, price, updated, devices, customer_id, customer_id_at, version) = row
    return ProfileState(
        user_fingerprint=fp, total_events=events, total_sessions=sessions, total_page_views=page_views,
        bookings_started=started, total_bookings=bookings, total_value=value, first_seen=first, last_seen=last,
        last_booking_at=last_booking, total_session_seconds=seconds, days_active=days, event_counts=dict(counts),
        segment=segment, scores=stored_scores(engagement, lead, churn, price), updated_at=updated,
        device_counts=dict(devices), customer_id=customer_id, customer_id_at=customer_id_at, version=version,
    )


def _log_entry(row: tuple[Any, ...]) -> LogEntry:
    txn, partition, fp, event_id, event_type, session_id, at, page, referrer, value, properties, device, user_id = row
    touch = Touch(sys.intern(event_type), sys.intern(session_id), at, None if page is None else sys.intern(page),
                  referrer, value, properties or {}, device, user_id)
    return LogEntry(txn, partition, fp, event_id, touch)
