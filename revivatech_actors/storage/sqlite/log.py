"""The event log, its partitions and leases on SQLite: one writer at a time, times from the
writer's clock."""

from __future__ import annotations

import datetime as dt
import sqlite3
from collections.abc import Sequence
from typing import Any

import orjson

from ...domain.journeys import JOURNEY_STEP_TYPE
from .._interface.log import LogStorage
from .._records import LogEntry, PartitionPosition, log_entry
from .queries import Q
from .timestamps import format_timestamp, parse_timestamp

__all__ = ["SQLiteLog"]


def _log_entry(row: tuple[Any, ...]) -> LogEntry:
    return log_entry(row, parse_timestamp(row[6]), orjson.loads(row[10]) if row[10] else None)


class SQLiteLog(LogStorage):
    """The log hooks of ``_interface.log``."""

    _log_queries = Q
    _log_entry = staticmethod(_log_entry)

    def _record_positions(
        self, conn: sqlite3.Connection, owner: str | None, positions: Sequence[PartitionPosition]
    ) -> int:
        now = format_timestamp(dt.datetime.now(dt.UTC))
        return sum(
            conn.execute(
                Q["record_position"],
                (
                    p.horizon,
                    orjson.dumps(sorted(p.applied)).decode(),
                    now,
                    p.partition,
                    owner,
                    p.epoch,
                    p.writes,
                ),
            ).rowcount
            for p in positions
        )

    def _partition_rows(
        self, conn: sqlite3.Connection, partitions: list[int]
    ) -> dict[int, tuple[str | None, int, int]]:
        rows = conn.execute(Q["partition_rows"]).fetchall()
        wanted = set(partitions)
        return {
            partition: (owner, epoch, writes)
            for partition, owner, epoch, writes in rows
            if partition in wanted
        }

    def _lock_partitions(self, conn: sqlite3.Connection) -> None:
        """Nothing to do: ``BEGIN IMMEDIATE`` already holds the database's write lock."""

    def _partition_count(self, conn: sqlite3.Connection) -> int:
        return conn.execute(Q["partition_count"]).fetchone()[0]

    def _create_partitions(self, conn: sqlite3.Connection, partitions: range) -> None:
        now = format_timestamp(dt.datetime.now(dt.UTC))
        conn.executemany(Q["create_partition"], [(p, now) for p in partitions])
        conn.executemany(Q["create_lease"], [(p,) for p in partitions])

    def _split_partitions(self, conn: sqlite3.Connection, held: int, count: int) -> None:
        now = format_timestamp(dt.datetime.now(dt.UTC))
        parents = {p: (h, a) for p, h, a in conn.execute(Q["partition_positions"])}
        conn.executemany(
            Q["split_partition"], [(q, *parents[q % held], now) for q in range(held, count)]
        )
        conn.executemany(Q["create_lease"], [(q,) for q in range(held, count)])
        conn.execute(Q["release_all_leases"])

    def _live_leases(self, conn: sqlite3.Connection) -> int:
        now = format_timestamp(dt.datetime.now(dt.UTC))
        return conn.execute(Q["live_leases"], (now,)).fetchone()[0]

    def _lease_heartbeat(self, conn: sqlite3.Connection, owner: str, ttl: float) -> None:
        now = dt.datetime.now(dt.UTC)
        conn.execute(
            Q["lease_heartbeat"],
            (owner, format_timestamp(now + dt.timedelta(seconds=ttl)), format_timestamp(now)),
        )
        conn.execute(Q["forget_owners"], (format_timestamp(now - dt.timedelta(minutes=1)),))

    def _lease_release(self, conn: sqlite3.Connection, owner: str, partitions: list[int]) -> None:
        conn.executemany(Q["lease_release"], [(owner, p) for p in partitions])

    def _lease_renew(self, conn: sqlite3.Connection, owner: str, ttl: float) -> dict[int, int]:
        until = format_timestamp(dt.datetime.now(dt.UTC) + dt.timedelta(seconds=ttl))
        renewed = [p for (p,) in conn.execute(Q["lease_renew"], (until, owner)).fetchall()]
        epochs = dict(conn.execute(Q["partition_epochs"]).fetchall())
        return {p: epochs[p] for p in renewed}

    def _live_owners(self, conn: sqlite3.Connection) -> int:
        now = format_timestamp(dt.datetime.now(dt.UTC))
        return conn.execute(Q["live_owners"], (now,)).fetchone()[0]

    def _lease_claim(
        self, conn: sqlite3.Connection, owner: str, ttl: float, want: int
    ) -> list[PartitionPosition]:
        now = dt.datetime.now(dt.UTC)
        taken = [
            p
            for (p,) in conn.execute(
                Q["lease_claim"],
                (
                    owner,
                    format_timestamp(now + dt.timedelta(seconds=ttl)),
                    format_timestamp(now),
                    want,
                ),
            ).fetchall()
        ]
        rows = [conn.execute(Q["claim_partition"], (owner, p)).fetchone() for p in taken]
        return sorted(
            (
                PartitionPosition(
                    partition, epoch, writes, horizon, frozenset(orjson.loads(applied))
                )
                for partition, epoch, writes, horizon, applied in rows
            ),
            key=lambda c: c.partition,
        )

    def _leave_blocking(self, conn: sqlite3.Connection, owner: str) -> None:
        with self._transaction(conn):
            conn.execute(Q["leave_leases"], (owner,))
            conn.execute(Q["leave_owners"], (owner,))

    def _log_horizon(self, conn: sqlite3.Connection) -> int:
        return conn.execute(Q["log_horizon"]).fetchone()[0]

    def _log_rows(
        self,
        conn: sqlite3.Connection,
        cursors: list[PartitionPosition],
        partitions: int,
        ranges: list[tuple[int, int]],
        limit: int | None,
    ) -> list[LogEntry]:
        rows = [
            {"partition": c.partition, "horizon": c.horizon, "applied": sorted(c.applied)}
            for c in cursors
        ]
        params = {
            "cursors": orjson.dumps(rows).decode(),
            "partitions": partitions,
            "ranges": orjson.dumps(ranges).decode(),
            "step": JOURNEY_STEP_TYPE,
        }
        sql = Q["log_rows"] if limit is None else Q["log_rows"] + f" LIMIT {int(limit)}"
        return [_log_entry(row) for row in conn.execute(sql, params).fetchall()]
