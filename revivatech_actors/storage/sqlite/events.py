"""Events and dead letters on SQLite: a batch goes through a staging table, one transaction."""

from __future__ import annotations

import datetime as dt
import sqlite3
from collections.abc import Sequence
from typing import ClassVar

import orjson

from ...domain.partitions import slot_of
from ...messages import DeadLetter, Event
from .._interface.events import EventsStorage
from .._records import (
    EVENT_EXTRA_COLUMNS,
    event_extra_values,
)
from .queries import MAX_PARAMETERS, Q, with_marks
from .timestamps import format_timestamp, optional_timestamp, parse_timestamp

__all__ = ["CREATE_STAGING", "SQLiteEvents"]

_EXTRA_LIST = ", ".join(EVENT_EXTRA_COLUMNS)

CREATE_STAGING = Q["create_staging"].replace("{extra}", _EXTRA_LIST)

_INSERT_STAGING = Q["insert_staging"].replace(
    "{marks}", ", ".join("?" * (13 + len(EVENT_EXTRA_COLUMNS)))
)

_INSERT_FROM_STAGING = Q["insert_from_staging"].replace("{extra}", _EXTRA_LIST)


class SQLiteEvents(EventsStorage):
    """The events hooks of ``_interface.events``."""

    # ValueError: text Python cannot encode as UTF-8 (a lone surrogate); OverflowError: an
    # integer wider than 64 bits.
    _row_errors: ClassVar[tuple[type[Exception], ...]] = (
        sqlite3.IntegrityError,
        sqlite3.DataError,
        ValueError,
        OverflowError,
    )

    def _store_events(self, conn: sqlite3.Connection, events: Sequence[Event]) -> set[str]:
        conn.executemany(
            _INSERT_STAGING,
            [
                (
                    seq,
                    e.event_id,
                    e.user_fingerprint,
                    e.session_id,
                    e.event_type,
                    format_timestamp(e.timestamp),
                    format_timestamp(e.received_at),
                    optional_timestamp(e.sent_at),
                    e.page_url,
                    e.referrer,
                    e.value,
                    orjson.dumps(e.properties).decode(),
                    slot_of(e.user_fingerprint),
                    *event_extra_values(e),
                )
                for seq, e in enumerate(events)
            ],
        )
        try:
            (txn,) = conn.execute(Q["next_log_txn"]).fetchone()
            return {
                event_id for (event_id,) in conn.execute(_INSERT_FROM_STAGING, (txn,)).fetchall()
            }
        finally:
            conn.execute(Q["clear_staging"])

    def _log_txn(self, conn: sqlite3.Connection) -> int:
        return conn.execute(Q["log_txn"]).fetchone()[0]

    def _received_times_blocking(
        self, conn: sqlite3.Connection, event_ids: list[str]
    ) -> dict[str, dt.datetime]:
        found: dict[str, dt.datetime] = {}
        for start in range(0, len(event_ids), MAX_PARAMETERS):
            chunk = event_ids[start : start + MAX_PARAMETERS]
            rows = conn.execute(with_marks("received_times", len(chunk)), chunk)
            found.update((event_id, parse_timestamp(received_at)) for event_id, received_at in rows)
        return found

    def _insert_dead_letters(self, conn: sqlite3.Connection, letters: Sequence[DeadLetter]) -> None:
        conn.executemany(
            Q["insert_dead_letter"],
            [
                (
                    d.letter_id,
                    format_timestamp(d.received_at),
                    d.source,
                    orjson.dumps(d.reasons).decode(),
                    d.payload,
                )
                for d in letters
            ],
        )
