"""Events and dead letters on PostgreSQL: a batch is one statement (its events as one JSON
parameter), sent from the event loop itself when the writer's connection is free; COPY into a
staging table when a batch must be bisected."""

from __future__ import annotations

import datetime as dt
import functools
from collections.abc import Sequence
from typing import Any, ClassVar

import orjson
import psycopg

from ...domain.partitions import slot_of
from ...messages import DeadLetter, Event
from .._interface.events import EventsStorage
from .._queries import load_queries
from .._records import (
    EVENT_EXTRA_COLUMNS,
    event_extra_items,
    event_extra_values,
)
from ._rows import one_row
from .libpq import execute_on_loop

__all__ = ["CREATE_STAGING", "PostgresEvents"]

Q = load_queries("postgres")

#: The extra columns (``EVENT_EXTRA_COLUMNS``) with their types, staged as they are stored.
_EXTRA_TYPES = {"time_on_page": "float8", "time_since_last_event": "float8"}

CREATE_STAGING = Q["create_staging"].replace(
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
    psycopg, and the same for ``libpq.execute_on_loop`` in libpq's placeholders."""
    declared = "".join(f", {c} {_EXTRA_TYPES.get(c, 'text')}" for c in extra)
    source = Q["events_json_source"].replace("{declared}", declared)
    sql = _store_events_sql(source, extra)
    return sql, sql.replace("%(events)s", "$1").replace("%(count)s", "$2").encode()


def _events_json(events: Sequence[Event]) -> tuple[bytes, tuple[str, ...]]:
    """``events`` as the JSON array ``_store_events_json_sql`` unpacks (``seq`` keeping their
    order), and which of ``EVENT_EXTRA_COLUMNS`` it holds, in their order."""
    rows = []
    present: set[str] = set()
    for seq, e in enumerate(events):
        row = {
            "seq": seq,
            "event_id": e.event_id,
            "user_fingerprint": e.user_fingerprint,
            "session_id": e.session_id,
            "event_type": e.event_type,
            "event_timestamp": e.timestamp,
            "received_at": e.received_at,
            "sent_at": e.sent_at,
            "page_url": e.page_url,
            "referrer": e.referrer,
            "value": e.value,
            "properties": e.properties,
            "log_slot": slot_of(e.user_fingerprint),
        }
        extra = event_extra_items(e)
        if extra:
            row.update(extra)
            present.update(extra)
        rows.append(row)
    return orjson.dumps(rows), tuple(c for c in EVENT_EXTRA_COLUMNS if c in present)


def _inserted(events: Sequence[Event], not_inserted: str) -> set[str]:
    """The ids of ``events`` a store statement inserted, from the ids it says it did not
    (comma-separated)."""
    ids = {e.event_id for e in events}
    return ids.difference(not_inserted.split(",")) if not_inserted else ids


class PostgresEvents(EventsStorage):
    """The events hooks of ``_interface.events``."""

    # DataError covers what psycopg refuses client-side too (e.g. a NUL character in text).
    _row_errors: ClassVar[tuple[type[Exception], ...]] = (psycopg.DataError, psycopg.IntegrityError)

    def _store_events(self, conn: psycopg.Connection[Any], events: Sequence[Event]) -> set[str]:
        with conn.cursor() as cursor:
            with cursor.copy(_COPY_STAGING) as copy:
                copy.set_types(_STAGING_TYPES)
                for seq, e in enumerate(events):
                    copy.write_row(
                        (
                            seq,
                            e.event_id,
                            e.user_fingerprint,
                            e.session_id,
                            e.event_type,
                            e.timestamp,
                            e.received_at,
                            e.sent_at,
                            e.page_url,
                            e.referrer,
                            e.value,
                            orjson.dumps(e.properties).decode(),
                            slot_of(e.user_fingerprint),
                            *event_extra_values(e),
                        )
                    )
            # The staging rows vanish at commit or rollback (ON COMMIT DELETE ROWS), and every
            # attempt, bisected ones included, is a transaction of its own.
            cursor.execute(_STORE_EVENTS, {"count": len(events)})
            _, not_inserted = one_row(cursor)
            return _inserted(events, not_inserted)

    def _log_txn(self, conn: psycopg.Connection[Any]) -> int:
        return one_row(conn.execute(Q["log_txn"]))[0]

    def _store_in_one_statement(
        self, conn: psycopg.Connection[Any], events: Sequence[Event]
    ) -> tuple[set[str], int] | None:
        rows, extra = _events_json(events)
        statement, _ = _store_events_json_sql(extra)
        txn, not_inserted = one_row(
            conn.execute(statement, {"events": rows.decode(), "count": len(events)})
        )
        return _inserted(events, not_inserted), int(txn)

    async def _store_on_loop(
        self, lane: Any, events: Sequence[Event]
    ) -> tuple[set[str], int] | None:
        conn = self._claim_lane(lane)
        if conn is None:
            return None
        # until the exchange is over: a cancellation leaves the connection mid-protocol
        broken = True
        try:
            rows, extra = _events_json(events)
            _, statement = _store_events_json_sql(extra)
            params = [rows, str(len(events)).encode()]
            try:
                row, error = await execute_on_loop(conn, statement, params)
            except psycopg.Error as exc:  # the connection failed: nothing is known of the commit
                raise self._translate_error(exc) from exc
            broken = False
            if error is not None:
                if isinstance(error, self._row_errors):
                    return None  # rolled back: the worker thread's path isolates the refused rows
                raise self._translate_error(error) from error
            txn, not_inserted = row
            return _inserted(events, not_inserted or ""), int(txn or 0)
        finally:
            await self._release_lane(lane, broken=broken)

    def _received_times_blocking(
        self, conn: psycopg.Connection[Any], event_ids: list[str]
    ) -> dict[str, dt.datetime]:
        rows = conn.execute(Q["received_times"], (event_ids,)).fetchall()
        return {event_id: received_at for event_id, received_at in rows}

    def _insert_dead_letters(
        self, conn: psycopg.Connection[Any], letters: Sequence[DeadLetter]
    ) -> None:
        with conn.cursor() as cursor:
            cursor.executemany(
                Q["insert_dead_letter"],
                [
                    # PostgreSQL text cannot hold NUL; keep the payload, visibly escaped.
                    (
                        d.letter_id,
                        d.received_at,
                        d.source,
                        orjson.dumps(d.reasons).decode(),
                        d.payload.replace("\x00", "\\u0000"),
                    )
                    for d in letters
                ],
            )
