"""The data lifecycle on PostgreSQL: purges in short batches, a visitor's erasure, dead letters."""

from __future__ import annotations

import datetime as dt
from typing import Any

import psycopg

from .._interface.lifecycle import LifecycleStorage
from .._lifecycle import (
    ERASE_DERIVED_QUERIES,
    PURGE_BY_KEY_QUERIES,
    PURGE_BY_TIME_QUERIES,
    PurgeStep,
    RejectedLetter,
)
from .._queries import load_queries

__all__ = ["PostgresLifecycle"]

Q = load_queries("postgres")


#: This engine's SQL of each purged and erased table (the names: ``storage._lifecycle``).
_PURGE_BY_TIME = {table: Q[name] for table, name in PURGE_BY_TIME_QUERIES.items()}
_PURGE_KEYS = {table: (Q[a], Q[b]) for table, (a, b) in PURGE_BY_KEY_QUERIES.items()}
_ERASE_DERIVED = {table: Q[name] for table, name in ERASE_DERIVED_QUERIES.items()}


def _retire_session_seconds(
    conn: psycopg.Connection[Any], retired: list[tuple[str, float]]
) -> None:
    """Add the deleted sessions' time to their profiles, locking the profiles in key order (as
    profile writes and the scorer lock them: no deadlock)."""
    seconds: dict[str, float] = {}
    for fp, s in retired:
        seconds[fp] = seconds.get(fp, 0.0) + s
    if not seconds:
        return
    fps = sorted(seconds)
    conn.execute(Q["lock_retiring_profiles"], (fps,))
    conn.execute(Q["retire_session_seconds"], (fps, [seconds[fp] for fp in fps]))


class PostgresLifecycle(LifecycleStorage):
    """The lifecycle hooks of ``_interface.lifecycle``."""

    def _purge_step_blocking(
        self,
        conn: psycopg.Connection[Any],
        table: str,
        cutoff: dt.datetime,
        limit: int,
        resume: Any,
    ) -> PurgeStep:
        if table in _PURGE_BY_TIME:
            deleted = conn.execute(
                _PURGE_BY_TIME[table], {"cutoff": cutoff, "limit": limit}
            ).rowcount
            return PurgeStep(
                deleted, True if deleted == limit else None
            )  # fewer than asked: none left
        first_keys, keys_after = _PURGE_KEYS[table]
        with conn.transaction():
            keys = conn.execute(
                first_keys if resume is None else keys_after, {"after": resume, "limit": limit}
            ).fetchall()
            if not keys:
                return PurgeStep(0, None)
            span = {"first": keys[0][0], "last": keys[-1][0], "cutoff": cutoff}
            if table == "customer_journeys":
                deleted = conn.execute(Q["purge_journeys"], span).rowcount
            else:
                retired = conn.execute(Q["purge_sessions"], span).fetchall()
                deleted = len(retired)
                _retire_session_seconds(conn, retired)
        return PurgeStep(deleted, keys[-1][0] if len(keys) == limit else None)

    def _erase_events(
        self, conn: psycopg.Connection[Any], user_fingerprint: str, since_txn: int | None
    ) -> dict[str, int]:
        if (
            "\x00" in user_fingerprint
        ):  # no text column can hold it (asking fails as if PostgreSQL were away)
            return {"analytics_events": 0}
        if since_txn is None:
            n = conn.execute(Q["erase_events"], (user_fingerprint,)).rowcount
        else:
            n = conn.execute(Q["erase_events_since"], (since_txn, user_fingerprint)).rowcount
        return {"analytics_events": n}

    def _erase_letters(self, conn: psycopg.Connection[Any], needles: tuple[str, str]) -> int:
        return conn.execute(Q["erase_dead_letters"], needles).rowcount

    def _fence_partition(self, conn: psycopg.Connection[Any], partition: int) -> None:
        conn.execute(Q["fence_partition"], (partition,))

    def _erase_derived(
        self, conn: psycopg.Connection[Any], user_fingerprint: str
    ) -> dict[str, int]:
        if "\x00" in user_fingerprint:  # no row can be the visitor's: see _erase_events
            return dict.fromkeys(_ERASE_DERIVED, 0)
        conn.execute(Q["hold_back_scores"])  # see lifecycle.sql: no score record brings it back
        return {
            table: conn.execute(sql, (user_fingerprint,)).rowcount
            for table, sql in _ERASE_DERIVED.items()
        }

    def _rejected_page_blocking(
        self, conn: psycopg.Connection[Any], limit: int, before: int | None
    ) -> list[RejectedLetter]:
        sql = Q["rejected_page"] if before is None else Q["rejected_page_before"]
        rows = conn.execute(sql, {"before": before, "limit": limit}).fetchall()
        return [RejectedLetter(*row) for row in rows]
