"""Admin reports on SQLite."""

from __future__ import annotations

import datetime as dt
import sqlite3

from ...domain.profiles import ProfileState
from .._interface.reports import ReportsStorage
from .._reports import BookingEvent, DailyRevenue, ProfilesPage, VisitorCounts
from .connection import read_snapshot
from .profiles import profile_state
from .queries import Q, marks
from .timestamps import format_timestamp, parse_timestamp

__all__ = ["SQLiteReports"]


class SQLiteReports(ReportsStorage):
    """The reports hooks of ``_interface.reports``."""

    def _profiles_page_blocking(
        self, conn: sqlite3.Connection, offset: int, limit: int
    ) -> ProfilesPage:
        with read_snapshot(conn):  # the count and the page of one snapshot
            (total,) = conn.execute(Q["count_profiles"]).fetchone()
            rows = conn.execute(Q["profiles_page"], (limit, offset)).fetchall()
        return ProfilesPage(total, [profile_state(row) for row in rows])

    def _top_profiles_blocking(
        self, conn: sqlite3.Connection, since: dt.datetime, limit: int
    ) -> list[ProfileState]:
        rows = conn.execute(Q["top_profiles"], (format_timestamp(since), limit))
        return [profile_state(row) for row in rows.fetchall()]

    def _visitor_counts_blocking(
        self, conn: sqlite3.Connection, since: dt.datetime
    ) -> VisitorCounts:
        at = format_timestamp(since)
        active, new = conn.execute(Q["visitor_counts"], (at, at)).fetchone()
        return VisitorCounts(active, new)

    def _revenue_by_day_blocking(
        self, conn: sqlite3.Connection, since: dt.datetime, until: dt.datetime, types: list[str]
    ) -> list[DailyRevenue]:
        rows = conn.execute(
            Q["revenue_by_day"].replace("{types}", marks(len(types))),
            (*types, format_timestamp(since), format_timestamp(until)),
        ).fetchall()
        return [
            DailyRevenue(dt.date.fromisoformat(day), float(revenue), orders)
            for day, revenue, orders in rows
        ]

    def _booking_events_blocking(
        self,
        conn: sqlite3.Connection,
        since: dt.datetime,
        until: dt.datetime,
        types: list[str],
        limit: int,
    ) -> list[BookingEvent]:
        rows = conn.execute(
            Q["booking_events"].replace("{types}", marks(len(types))),
            (*types, format_timestamp(since), format_timestamp(until), limit),
        ).fetchall()
        return [BookingEvent(fp, kind, parse_timestamp(at), value) for fp, kind, at, value in rows]
