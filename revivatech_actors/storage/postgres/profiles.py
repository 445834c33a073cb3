"""Profiles, sessions, journeys and active days on PostgreSQL: one statement writes a chunk of
visitors' deltas (``upsert_profiles``)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any

import orjson
import psycopg

from ...domain.journeys import STAGES
from ...domain.profiles import ProfileDelta, ProfileState, journey_rows, sessions_of
from .._interface.profiles import ProfilesStorage
from .._queries import load_queries
from .._records import (
    StoredJourney,
    VisitorKeys,
    profile_delta_row,
    session_delta_row,
)
from .._records import profile_state as stored_profile_state

__all__ = ["PostgresProfiles", "profile_state"]

Q = load_queries("postgres")


def _same(value: Any) -> Any:
    return value  # psycopg decodes times itself


def profile_state(row: tuple[Any, ...]) -> ProfileState:
    return stored_profile_state(row, _same, dict)


class PostgresProfiles(ProfilesStorage):
    """The profiles hooks of ``_interface.profiles``."""

    def _upsert_profiles(
        self,
        conn: psycopg.Connection[Any],
        deltas: Sequence[ProfileDelta],
        max_touchpoints: int,
        return_rows: bool,
    ) -> dict[str, ProfileState]:
        profiles = orjson.dumps([profile_delta_row(d) for d in deltas]).decode()
        journeys = [row for d in deltas for row in journey_rows(d)]
        for row in journeys:
            if len(row["touchpoints"]) > max_touchpoints:
                row["touchpoints"] = row["touchpoints"][:max_touchpoints]
        sessions = orjson.dumps([session_delta_row(row) for row in sessions_of(deltas)]).decode()
        conn.execute(
            Q["upsert_profiles"],
            {
                "deltas": profiles,
                "journeys": orjson.dumps(journeys).decode(),
                "sessions": sessions,
                "max_touchpoints": max_touchpoints,
                "stages": list(STAGES),
            },
        )
        # Read after the statement, not RETURNING from it: its session time sums the session rows
        # the statement itself updated, which its own subqueries would not see.
        return (
            self._load_profiles_blocking(conn, [d.user_fingerprint for d in deltas])
            if return_rows
            else {}
        )

    def _load_profiles_blocking(
        self, conn: psycopg.Connection[Any], user_fingerprints: list[str]
    ) -> dict[str, ProfileState]:
        rows = conn.execute(Q["load_profiles"], (user_fingerprints,)).fetchall()
        return {row[0]: profile_state(row) for row in rows}

    def _visitor_keys_blocking(
        self, conn: psycopg.Connection[Any], user_fingerprint: str
    ) -> VisitorKeys:
        rows = conn.execute(Q["visitor_keys"], {"fp": user_fingerprint}).fetchall()
        return VisitorKeys(
            sessions=frozenset(key for kind, key in rows if kind == "session"),
            days=frozenset(dt.date.fromisoformat(key) for kind, key in rows if kind == "day"),
        )

    def _load_journeys_blocking(
        self, conn: psycopg.Connection[Any], user_fingerprint: str
    ) -> list[StoredJourney]:
        rows = conn.execute(Q["load_journeys"], (user_fingerprint,)).fetchall()
        return [
            StoredJourney(sid, points, stage, first, last, started, updated, first_at, last_at)
            for sid, points, stage, first, last, started, updated, first_at, last_at in rows
        ]
