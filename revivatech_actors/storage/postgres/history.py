"""Stored history for backtests on PostgreSQL."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from typing import Any

import psycopg

from .._interface.history import EVALUATIONS_KEPT, HistoryStorage
from .._queries import load_queries

__all__ = ["PostgresHistory"]

Q = load_queries("postgres")

#: Rows per chunk of the streamed scan. Streamed, the server reads ahead while the backtest
#: works, where a server-side cursor waits for every fetch; a libpq older than 17 streams row by
#: row, which is slower but gives the same rows.
_ROWS_PER_CHUNK = 1_000


class PostgresHistory(HistoryStorage):
    """The history hooks of ``_interface.history``."""

    def _history_bounds_blocking(
        self, conn: psycopg.Connection[Any]
    ) -> tuple[dt.datetime, dt.datetime] | None:
        oldest, newest = conn.execute(Q["history_bounds"]).fetchone() or (None, None)
        return None if oldest is None or newest is None else (oldest, newest)

    def _history_rows_blocking(
        self, conn: psycopg.Connection[Any], until: dt.datetime
    ) -> Iterator[tuple[str, str, str, dt.datetime, float | None]]:
        size = _ROWS_PER_CHUNK if psycopg.capabilities.has_stream_chunked() else 1
        with conn.transaction(), conn.cursor() as cursor:
            cursor.execute(Q["history_without_jit"])
            yield from cursor.stream(Q["history_events"], {"until": until}, size=size)

    def _record_evaluation_blocking(
        self, conn: psycopg.Connection[Any], evaluated_at: dt.datetime, report: str
    ) -> None:
        with self._transaction(conn):
            conn.execute(Q["record_evaluation"], {"evaluated_at": evaluated_at, "report": report})
            conn.execute(Q["forget_old_evaluations"], {"kept": EVALUATIONS_KEPT})

    def _latest_evaluation_blocking(
        self, conn: psycopg.Connection[Any]
    ) -> tuple[dt.datetime, str] | None:
        row = conn.execute(Q["latest_evaluation"]).fetchone()
        return None if row is None else (row[0], row[1])
