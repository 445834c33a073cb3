"""Stored history for backtests on SQLite."""

from __future__ import annotations

import datetime as dt
import sqlite3
from collections.abc import Iterator

from .._interface.history import EVALUATIONS_KEPT, HistoryStorage
from .queries import Q
from .timestamps import format_timestamp, parse_timestamp

__all__ = ["SQLiteHistory"]


class SQLiteHistory(HistoryStorage):
    """The history hooks of ``_interface.history``."""

    def _history_bounds_blocking(
        self, conn: sqlite3.Connection
    ) -> tuple[dt.datetime, dt.datetime] | None:
        oldest, newest = conn.execute(Q["history_bounds"]).fetchone() or (None, None)
        if oldest is None or newest is None:
            return None
        return parse_timestamp(oldest), parse_timestamp(newest)

    def _history_rows_blocking(
        self, conn: sqlite3.Connection, until: dt.datetime
    ) -> Iterator[tuple[str, str, str, dt.datetime, float | None]]:
        cursor = conn.execute(Q["history_events"], {"until": format_timestamp(until)})
        for fingerprint, event_type, session_id, timestamp, value in cursor:
            yield fingerprint, event_type, session_id, parse_timestamp(timestamp), value

    def _record_evaluation_blocking(
        self, conn: sqlite3.Connection, evaluated_at: dt.datetime, report: str
    ) -> None:
        with self._transaction(conn):
            conn.execute(
                Q["record_evaluation"],
                {"evaluated_at": format_timestamp(evaluated_at), "report": report},
            )
            conn.execute(Q["forget_old_evaluations"], {"kept": EVALUATIONS_KEPT})

    def _latest_evaluation_blocking(
        self, conn: sqlite3.Connection
    ) -> tuple[dt.datetime, str] | None:
        row = conn.execute(Q["latest_evaluation"]).fetchone()
        return None if row is None else (parse_timestamp(row[0]), row[1])
