"""The realtime window's seed on PostgreSQL."""

from __future__ import annotations

import datetime as dt
from typing import Any

import psycopg

from ...domain.realtime import BUCKET_SECONDS
from .._interface.realtime import RealtimeStorage
from .._queries import load_queries
from .._records import (
    RealtimeSeed,
)

__all__ = ["PostgresRealtime"]

Q = load_queries("postgres")


class PostgresRealtime(RealtimeStorage):
    """The realtime hook of ``_interface.realtime``."""

    def _realtime_seed_blocking(
        self,
        conn: psycopg.Connection[Any],
        since: dt.datetime,
        page_types: list[str],
        conversion_types: list[str],
    ) -> RealtimeSeed:
        params = {
            "since": since,
            "bucket": BUCKET_SECONDS,
            "pages": page_types,
            "conversions": conversion_types,
        }
        with conn.transaction():  # one snapshot for the four answers
            counts = conn.execute(Q["realtime_counts"], params).fetchall()
            pages = conn.execute(Q["realtime_pages"], params).fetchall()
            users = conn.execute(Q["realtime_newest_by_visitor"], params).fetchall()
            sessions = conn.execute(Q["realtime_newest_by_session"], params).fetchall()
        return RealtimeSeed(
            [tuple(row) for row in counts],
            [tuple(row) for row in pages],
            dict(users),
            dict(sessions),
        )
