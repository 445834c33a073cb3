"""The event log, its partitions and leases on PostgreSQL: the database's clock, advisory locks,
and LISTEN/NOTIFY to tell other processes of stored events."""

from __future__ import annotations

import hashlib
import weakref
from collections.abc import Sequence
from typing import Any

import orjson
import psycopg

from ...domain.journeys import JOURNEY_STEP_TYPE
from .._interface.log import LogStorage
from .._queries import load_queries
from .._records import LogEntry, PartitionPosition, log_entry
from ._rows import one_row

__all__ = ["PostgresLog"]

Q = load_queries("postgres")

#: Key of the transaction-level advisory lock that serialises changes to the set of partitions.
PARTITIONS_LOCK_KEY = int.from_bytes(
    hashlib.sha256(b"revivatech_actors.profile_partitions").digest()[:8], "big", signed=True
)


def _log_entry(row: tuple[Any, ...]) -> LogEntry:
    return log_entry(row, row[6], row[10])


class PostgresLog(LogStorage):
    """The log hooks of ``_interface.log``."""

    _log_queries = Q
    _log_entry = staticmethod(_log_entry)

    def __init__(self, url: str, **options: Any) -> None:
        super().__init__(url, **options)
        # connections that LISTEN (the first, or one after a reconnect, does not yet)
        self._listening: weakref.WeakSet[psycopg.Connection[Any]] = weakref.WeakSet()

    def _record_positions(
        self,
        conn: psycopg.Connection[Any],
        owner: str | None,
        positions: Sequence[PartitionPosition],
    ) -> int:
        rows = [
            {
                "partition": p.partition,
                "epoch": p.epoch,
                "writes": p.writes,
                "horizon": p.horizon,
                "applied": sorted(p.applied),
            }
            for p in positions
        ]
        return conn.execute(
            Q["record_positions"], {"positions": orjson.dumps(rows).decode(), "owner": owner}
        ).rowcount

    def _partition_rows(
        self, conn: psycopg.Connection[Any], partitions: list[int]
    ) -> dict[int, tuple[str | None, int, int]]:
        rows = conn.execute(Q["partition_rows"], (partitions,)).fetchall()
        return {partition: (owner, epoch, writes) for partition, owner, epoch, writes in rows}

    def _lock_partitions(self, conn: psycopg.Connection[Any]) -> None:
        conn.execute(Q["lock_partitions"], (PARTITIONS_LOCK_KEY,))

    def _partition_count(self, conn: psycopg.Connection[Any]) -> int:
        return one_row(conn.execute(Q["partition_count"]))[0]

    def _create_partitions(self, conn: psycopg.Connection[Any], partitions: range) -> None:
        bounds = (partitions.start, partitions.stop - 1)
        conn.execute(Q["create_partitions"], bounds)
        conn.execute(Q["create_leases"], bounds)

    def _split_partitions(self, conn: psycopg.Connection[Any], held: int, count: int) -> None:
        conn.execute(Q["split_partitions"], {"held": held, "count": count})
        conn.execute(Q["split_leases"], (held, count))
        conn.execute(Q["release_all_leases"])

    def _live_leases(self, conn: psycopg.Connection[Any]) -> int:
        return one_row(conn.execute(Q["live_leases"]))[0]

    def _lease_heartbeat(self, conn: psycopg.Connection[Any], owner: str, ttl: float) -> None:
        conn.execute(Q["lease_heartbeat"], {"owner": owner, "ttl": ttl})
        conn.execute(Q["forget_owners"])

    def _lease_release(
        self, conn: psycopg.Connection[Any], owner: str, partitions: list[int]
    ) -> None:
        conn.execute(Q["lease_release"], (owner, partitions))

    def _lease_renew(self, conn: psycopg.Connection[Any], owner: str, ttl: float) -> dict[int, int]:
        return dict(conn.execute(Q["lease_renew"], {"owner": owner, "ttl": ttl}).fetchall())

    def _live_owners(self, conn: psycopg.Connection[Any]) -> int:
        return one_row(conn.execute(Q["live_owners"]))[0]

    def _lease_claim(
        self, conn: psycopg.Connection[Any], owner: str, ttl: float, want: int
    ) -> list[PartitionPosition]:
        rows = conn.execute(Q["lease_claim"], {"owner": owner, "ttl": ttl, "want": want}).fetchall()
        return [
            PartitionPosition(partition, epoch, writes, horizon, frozenset(applied))
            for partition, epoch, writes, horizon, applied in rows
        ]

    def _leave_blocking(self, conn: psycopg.Connection[Any], owner: str) -> None:
        with conn.transaction():
            conn.execute(Q["leave_leases"], (owner,))
            conn.execute(Q["leave_owners"], (owner,))

    def _announce_log_blocking(self, conn: psycopg.Connection[Any]) -> None:
        conn.execute(Q["announce_log"])

    def _wait_for_log_blocking(self, conn: psycopg.Connection[Any], timeout: float) -> bool:
        if conn not in self._listening:  # a new connection (the first, or after a reconnect)
            conn.execute(Q["listen_log"])
            self._listening.add(conn)
        # each announcement queued meanwhile wakes a later call at once; the owner coalesces them
        return any(True for _ in conn.notifies(timeout=timeout, stop_after=1))

    def _log_horizon(self, conn: psycopg.Connection[Any]) -> int:
        return one_row(conn.execute(Q["log_horizon"]))[0]

    def _log_rows(
        self,
        conn: psycopg.Connection[Any],
        cursors: list[PartitionPosition],
        partitions: int,
        ranges: list[tuple[int, int]],
        limit: int | None,
    ) -> list[LogEntry]:
        rows = [
            {"partition": c.partition, "horizon": c.horizon, "applied": list(c.applied)}
            for c in cursors
        ]
        params = {
            "cursors": orjson.dumps(rows).decode(),
            "partitions": partitions,
            "step": JOURNEY_STEP_TYPE,
            "lows": [low for low, _ in ranges],
            "highs": [high for _, high in ranges],
        }
        sql = Q["log_rows"] if limit is None else Q["log_rows"] + f" LIMIT {int(limit)}"
        return [_log_entry(row) for row in conn.execute(sql, params).fetchall()]
