"""Admin reports on PostgreSQL."""

from __future__ import annotations

import datetime as dt
from typing import Any

import psycopg

from ...domain.profiles import ProfileState
from .._interface.reports import ReportsStorage
from .._queries import load_queries
from .._reports import BookingEvent, DailyRevenue, ProfilesPage, VisitorCounts
from ._rows import one_row
from .profiles import profile_state

__all__ = ["PostgresReports"]

Q = load_queries("postgres")


class PostgresReports(ReportsStorage):
    """The reports hooks of ``_interface.reports``."""

    def _profiles_page_blocking(
        self, conn: psycopg.Connection[Any], offset: int, limit: int
    ) -> ProfilesPage:
        with conn.transaction():  # the count and the page of one snapshot
            (total,) = one_row(conn.execute(Q["count_profiles"]))
            rows = conn.execute(Q["profiles_page"], {"offset": offset, "limit": limit}).fetchall()
        return ProfilesPage(total, [profile_state(row) for row in rows])

    def _top_profiles_blocking(
        self, conn: psycopg.Connection[Any], since: dt.datetime, limit: int
    ) -> list[ProfileState]:
        return [
            profile_state(row)
            for row in conn.execute(Q["top_profiles"], {"since": since, "limit": limit}).fetchall()
        ]

    def _visitor_counts_blocking(
        self, conn: psycopg.Connection[Any], since: dt.datetime
    ) -> VisitorCounts:
        active, new = one_row(conn.execute(Q["visitor_counts"], {"since": since}))
        return VisitorCounts(active, new)

    def _revenue_by_day_blocking(
        self,
        conn: psycopg.Connection[Any],
        since: dt.datetime,
        until: dt.datetime,
        types: list[str],
    ) -> list[DailyRevenue]:
        rows = conn.execute(
            Q["revenue_by_day"], {"types": types, "since": since, "until": until}
        ).fetchall()
        return [DailyRevenue(day, revenue, orders) for day, revenue, orders in rows]

    def _booking_events_blocking(
        self,
        conn: psycopg.Connection[Any],
        since: dt.datetime,
        until: dt.datetime,
        types: list[str],
        limit: int,
    ) -> list[BookingEvent]:
        params = {"types": types, "since": since, "until": until, "limit": limit}
        return [BookingEvent(*row) for row in conn.execute(Q["booking_events"], params).fetchall()]
