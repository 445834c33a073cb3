"""Profiles, sessions, journeys and active days on SQLite: one writer holds the database, so a
visitor's rows are written one statement at a time and journeys merge in Python
(``domain.journeys.merge_journey``)."""

from __future__ import annotations

import datetime as dt
import sqlite3
from collections.abc import Sequence
from typing import Any

import orjson

from ...domain.journeys import JourneyRow, merge_journey
from ...domain.profiles import ProfileDelta, ProfileState, journey_rows, sessions_of
from .._interface.profiles import ProfilesStorage
from .._records import (
    StoredJourney,
    VisitorKeys,
)
from .._records import profile_state as stored_profile_state
from .connection import read_snapshot
from .queries import MAX_PARAMETERS, Q, with_marks
from .timestamps import format_timestamp, optional_datetime, optional_timestamp, parse_timestamp

__all__ = ["SQLiteProfiles", "profile_state"]


def _journey_row(row: tuple[Any, ...]) -> JourneyRow:
    """A ``select_journey`` row as ``merge_journey`` takes it."""
    points, stage, first, first_at, last, last_at, started, updated = row
    return JourneyRow(
        orjson.loads(points),
        stage,
        first,
        optional_datetime(first_at),
        last,
        optional_datetime(last_at),
        parse_timestamp(started),
        parse_timestamp(updated),
    )


def profile_state(row: tuple[Any, ...]) -> ProfileState:
    return stored_profile_state(row, optional_datetime, orjson.loads)


class SQLiteProfiles(ProfilesStorage):
    """The profiles hooks of ``_interface.profiles``."""

    def _upsert_profiles(
        self,
        conn: sqlite3.Connection,
        deltas: Sequence[ProfileDelta],
        max_touchpoints: int,
        return_rows: bool,
    ) -> dict[str, ProfileState]:
        # One writer holds the database (BEGIN IMMEDIATE): journeys are merged here, in Python,
        # by the same rules PostgreSQL applies in SQL.
        for d in deltas:
            fp = d.user_fingerprint
            row = conn.execute(Q["last_booking"], (fp,)).fetchone()
            booked_at = optional_datetime(row[0]) if row else None
            new_days = sum(
                conn.execute(Q["insert_active_day"], (fp, day.isoformat())).rowcount
                for day in d.active_days
            )
            new_sessions = sum(
                self._merge_journey(conn, j, booked_at, max_touchpoints) for j in journey_rows(d)
            )
            conn.execute(
                Q["upsert_profile"],
                (
                    fp,
                    d.events,
                    d.page_views,
                    d.bookings_started,
                    d.bookings_completed,
                    d.value,
                    optional_timestamp(d.first_seen),
                    optional_timestamp(d.last_seen),
                    optional_timestamp(d.last_booking_at),
                    new_days,
                    new_sessions,
                    orjson.dumps(d.event_counts).decode(),
                    orjson.dumps(d.device_counts).decode(),
                    d.customer_id,
                    optional_timestamp(d.customer_id_at),
                ),
            )
        conn.executemany(
            Q["upsert_session"],
            [
                (
                    d.session_id,
                    d.user_fingerprint,
                    format_timestamp(d.started_at),
                    format_timestamp(d.last_activity_at),
                    d.event_count,
                    d.page_views,
                    d.entry_page,
                    d.exit_page,
                    d.referrer,
                    d.utm_source,
                )
                for d in sessions_of(deltas)
            ],
        )
        return (
            self._load_profiles_blocking(conn, [d.user_fingerprint for d in deltas])
            if return_rows
            else {}
        )

    def _merge_journey(
        self,
        conn: sqlite3.Connection,
        j: dict[str, Any],
        booked_at: dt.datetime | None,
        max_touchpoints: int,
    ) -> bool:
        """Insert or merge one session's journey row (``domain.journeys.merge_journey``); True
        when the session is new."""
        fp, sid = j["user_fingerprint"], j["session_id"]
        stored = conn.execute(Q["select_journey"], (fp, sid)).fetchone()
        new = JourneyRow(
            j["touchpoints"],
            j["stage"],
            j["first_source"],
            j["first_source_at"],
            j["last_source"],
            j["last_source_at"],
            j["started_at"],
            j["last_at"],
        )
        old = None if stored is None else _journey_row(stored)
        row = merge_journey(old, new, max_touchpoints, booked_at)
        conn.execute(
            Q["upsert_journey"],
            (
                fp,
                sid,
                orjson.dumps(row.touchpoints).decode(),
                row.stage,
                row.first_source,
                optional_timestamp(row.first_source_at),
                row.last_source,
                optional_timestamp(row.last_source_at),
                format_timestamp(row.started_at),
                format_timestamp(row.last_at),
            ),
        )
        return old is None

    def _load_profiles_blocking(
        self, conn: sqlite3.Connection, user_fingerprints: list[str]
    ) -> dict[str, ProfileState]:
        found: dict[str, ProfileState] = {}
        for start in range(0, len(user_fingerprints), MAX_PARAMETERS):
            chunk = user_fingerprints[start : start + MAX_PARAMETERS]
            rows = conn.execute(with_marks("load_profiles", len(chunk)), chunk)
            found.update((row[0], profile_state(row)) for row in rows)
        return found

    def _visitor_keys_blocking(
        self, conn: sqlite3.Connection, user_fingerprint: str
    ) -> VisitorKeys:
        with read_snapshot(conn):  # sessions and days as of one write
            sessions = conn.execute(Q["visitor_sessions"], (user_fingerprint,)).fetchall()
            days = conn.execute(Q["visitor_days"], (user_fingerprint,)).fetchall()
        return VisitorKeys(
            sessions=frozenset(sid for (sid,) in sessions),
            days=frozenset(dt.date.fromisoformat(day) for (day,) in days),
        )

    def _load_journeys_blocking(
        self, conn: sqlite3.Connection, user_fingerprint: str
    ) -> list[StoredJourney]:
        rows = conn.execute(Q["load_journeys"], (user_fingerprint,))
        return [
            StoredJourney(
                sid,
                orjson.loads(points),
                stage,
                first,
                last,
                parse_timestamp(started),
                parse_timestamp(updated),
                optional_datetime(first_at),
                optional_datetime(last_at),
            )
            for sid, points, stage, first, last, started, updated, first_at, last_at in rows
        ]
