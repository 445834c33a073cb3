"""The data lifecycle on SQLite: purges in short batches, a visitor's erasure, dead letters."""

from __future__ import annotations

import datetime as dt
import sqlite3
from typing import Any

import orjson

from .._interface.lifecycle import LifecycleStorage
from .._lifecycle import (
    ERASE_DERIVED_QUERIES,
    PURGE_BY_KEY_QUERIES,
    PURGE_BY_TIME_QUERIES,
    PurgeStep,
    RejectedLetter,
)
from .queries import Q
from .timestamps import format_timestamp, optional_datetime, parse_timestamp

__all__ = ["SQLiteLifecycle"]


#: This engine's SQL of each purged and erased table (the names: ``storage._lifecycle``).
_PURGE_BY_TIME = {table: Q[name] for table, name in PURGE_BY_TIME_QUERIES.items()}
_PURGE_KEYS = {table: (Q[a], Q[b]) for table, (a, b) in PURGE_BY_KEY_QUERIES.items()}
_ERASE_DERIVED = {table: Q[name] for table, name in ERASE_DERIVED_QUERIES.items()}


class SQLiteLifecycle(LifecycleStorage):
    """The lifecycle hooks of ``_interface.lifecycle``."""

    def _purge_step_blocking(
        self, conn: sqlite3.Connection, table: str, cutoff: dt.datetime, limit: int, resume: Any
    ) -> PurgeStep:
        params = {"cutoff": format_timestamp(cutoff), "limit": limit, "after": resume}
        with self._transaction(conn):
            if table in _PURGE_BY_TIME:
                deleted = conn.execute(_PURGE_BY_TIME[table], params).rowcount
                return PurgeStep(
                    deleted, True if deleted == limit else None
                )  # fewer than asked: none left
            first_keys, keys_after = _PURGE_KEYS[table]
            keys = conn.execute(first_keys if resume is None else keys_after, params).fetchall()
            if not keys:
                return PurgeStep(0, None)
            span = {"first": keys[0][0], "last": keys[-1][0], "cutoff": params["cutoff"]}
            if table == "customer_journeys":
                deleted = conn.execute(Q["purge_journeys"], span).rowcount
            else:
                retired = conn.execute(Q["purge_sessions"], span).fetchall()
                deleted = len(retired)
                seconds: dict[str, float] = {}
                for fp, s in retired:
                    seconds[fp] = seconds.get(fp, 0.0) + s
                conn.executemany(
                    Q["retire_session_seconds"], [(s, fp) for fp, s in sorted(seconds.items())]
                )
        return PurgeStep(deleted, keys[-1][0] if len(keys) == limit else None)

    def _erase_events(
        self, conn: sqlite3.Connection, user_fingerprint: str, since_txn: int | None
    ) -> dict[str, int]:
        if since_txn is None:
            n = conn.execute(Q["erase_events"], (user_fingerprint,)).rowcount
        else:
            n = conn.execute(Q["erase_events_since"], (since_txn, user_fingerprint)).rowcount
        return {"analytics_events": n}

    def _erase_letters(self, conn: sqlite3.Connection, needles: tuple[str, str]) -> int:
        return conn.execute(Q["erase_dead_letters"], needles).rowcount

    def _fence_partition(self, conn: sqlite3.Connection, partition: int) -> None:
        conn.execute(Q["fence_partition"], (format_timestamp(dt.datetime.now(dt.UTC)), partition))

    def _erase_derived(self, conn: sqlite3.Connection, user_fingerprint: str) -> dict[str, int]:
        return {
            table: conn.execute(sql, (user_fingerprint,)).rowcount
            for table, sql in _ERASE_DERIVED.items()
        }

    def _rejected_page_blocking(
        self, conn: sqlite3.Connection, limit: int, before: int | None
    ) -> list[RejectedLetter]:
        sql = Q["rejected_page"] if before is None else Q["rejected_page_before"]
        rows = conn.execute(sql, {"before": before, "limit": limit}).fetchall()
        return [
            RejectedLetter(
                i,
                letter,
                parse_timestamp(at),
                optional_datetime(last),
                times,
                source,
                orjson.loads(reasons),
                payload,
            )
            for i, letter, at, last, times, source, reasons, payload in rows
        ]
