"""The realtime window's seed on SQLite."""

from __future__ import annotations

import datetime as dt
import sqlite3

from ...domain.realtime import BUCKET_SECONDS
from .._interface.realtime import RealtimeStorage
from .._records import (
    RealtimeSeed,
)
from .connection import read_snapshot
from .queries import Q, marks
from .timestamps import format_timestamp

__all__ = ["SQLiteRealtime"]

_BUCKET = str(int(BUCKET_SECONDS))

_REALTIME_NEWEST = {
    key: Q[name].replace("{bucket}", _BUCKET)
    for key, name in (
        ("user_fingerprint", "realtime_newest_by_visitor"),
        ("session_id", "realtime_newest_by_session"),
    )
}


class SQLiteRealtime(RealtimeStorage):
    """The realtime hook of ``_interface.realtime``."""

    def _realtime_seed_blocking(
        self,
        conn: sqlite3.Connection,
        since: dt.datetime,
        page_types: list[str],
        conversion_types: list[str],
    ) -> RealtimeSeed:
        pages, conversions = marks(len(page_types)), marks(len(conversion_types))
        counts_sql = Q["realtime_counts"].replace("{pages}", pages)
        counts_sql = counts_sql.replace("{conversions}", conversions).replace("{bucket}", _BUCKET)
        pages_sql = Q["realtime_pages"].replace("{pages}", pages).replace("{bucket}", _BUCKET)
        since_text = format_timestamp(since)
        with read_snapshot(conn):  # one snapshot for the four answers
            counts = conn.execute(
                counts_sql, (*page_types, *conversion_types, since_text)
            ).fetchall()
            page_views = conn.execute(pages_sql, (since_text, *page_types)).fetchall()
            newest = {
                key: dict(conn.execute(sql, (since_text,)).fetchall())
                for key, sql in _REALTIME_NEWEST.items()
            }
        return RealtimeSeed(
            [tuple(r) for r in counts],
            [tuple(r) for r in page_views],
            newest["user_fingerprint"],
            newest["session_id"],
        )
