"""Connections to PostgreSQL: connect (keepalives, staging table), translate errors, check
health, run the migrations' transactions."""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import math
import os
from collections.abc import Iterator
from typing import Any, ClassVar

import orjson
import psycopg
import psycopg.conninfo
import psycopg.types.json

from ...domain.secrets import mask_password
from .._errors import StorageError, StorageUnavailable
from .._messages import first_line
from .._migrate import MigratingStorage
from .._queries import load_queries
from ..migrations import AppliedMigration, Migration
from ._rows import one_row
from .events import CREATE_STAGING

__all__ = ["MIGRATION_LOCK_KEY", "PostgresConnection"]

Q = load_queries("postgres")

#: Key of the transaction-level advisory lock that serialises migrations across processes: the
#: first 8 bytes of sha256("revivatech_actors.schema_migrations") as a signed bigint, so it is
#: stable and unlikely to collide with another application's advisory locks in the same database.
MIGRATION_LOCK_KEY = int.from_bytes(
    hashlib.sha256(b"revivatech_actors.schema_migrations").digest()[:8], "big", signed=True
)

#: libpq counts connect_timeout in whole seconds and treats anything below 2 as 2; ``open()``
#: enforces the exact float timeout itself with trio, this only bounds reconnects in threads.
_LIBPQ_MIN_CONNECT_TIMEOUT = 2

#: TCP keepalives (unless the URL sets its own): a writer blocked on a peer that vanished without
#: closing the connection notices within about idle + interval * count = 60 s instead of hours.
_KEEPALIVES = {
    "keepalives": 1,
    "keepalives_idle": 30,
    "keepalives_interval": 10,
    "keepalives_count": 3,
}

#: SQLSTATE classes meaning "the server cannot serve us now" rather than "this statement is
#: wrong": 08 connection exception, 53 insufficient resources (e.g. too many connections),
#: 57P operator intervention (admin/crash shutdown, cannot connect now).
_UNAVAILABLE_SQLSTATES = ("08", "53", "57P")


class PostgresConnection(MigratingStorage):
    """The connection hooks of ``_connections`` and the migration hooks of ``_migrate``."""

    _driver_errors: ClassVar[tuple[type[Exception], ...]] = (psycopg.Error,)

    def __init__(self, url: str, **options: Any) -> None:
        """See ``Storage.__init__`` for ``options``; the URL is parsed (not connected) here."""
        super().__init__(url, **options)
        try:
            params = psycopg.conninfo.conninfo_to_dict(url)
        except psycopg.Error as exc:
            msg = f"invalid PostgreSQL URL {mask_password(url)!r}: {first_line(exc)}"
            raise ValueError(msg) from None
        self._params = params
        host = params.get("host") or os.environ.get("PGHOST") or "localhost"
        port = params.get("port") or os.environ.get("PGPORT") or "5432"
        self._host_port = f"{host}:{port}"

    def _where(self) -> str:
        return f"PostgreSQL at {self._host_port}"

    def _connect(self, purpose: str) -> psycopg.Connection[Any]:
        options: dict[str, Any] = {
            key: value for key, value in _KEEPALIVES.items() if key not in self._params
        }
        if "application_name" not in self._params:
            options["application_name"] = f"revivatech-actors {purpose}"
        if "connect_timeout" not in self._params:
            options["connect_timeout"] = max(
                _LIBPQ_MIN_CONNECT_TIMEOUT, math.ceil(self.connect_timeout)
            )
        conn = psycopg.connect(self._url, autocommit=True, **options)
        psycopg.types.json.set_json_loads(orjson.loads, conn)
        if purpose == "writer":
            conn.execute(CREATE_STAGING)
        return conn

    def _is_usable(self, conn: psycopg.Connection[Any]) -> bool:
        return not (conn.closed or conn.broken)

    def _close_connection(self, conn: psycopg.Connection[Any]) -> None:
        conn.close()

    def _translate_error(self, exc: Exception) -> StorageError:
        message = f"{self._where()}: {first_line(exc)}"
        sqlstate = getattr(exc, "sqlstate", None)
        if isinstance(exc, psycopg.InterfaceError) or (
            isinstance(exc, psycopg.OperationalError)
            and (sqlstate is None or sqlstate.startswith(_UNAVAILABLE_SQLSTATES))
        ):
            return StorageUnavailable(message)
        return StorageError(message)

    def _ping_blocking(self, conn: psycopg.Connection[Any]) -> None:
        conn.execute(Q["ping"]).fetchone()

    def _table_names_blocking(self, conn: psycopg.Connection[Any]) -> set[str]:
        rows = conn.execute(Q["table_names"]).fetchall()
        return {name for (name,) in rows}

    @contextlib.contextmanager
    def _transaction(self, conn: psycopg.Connection[Any]) -> Iterator[None]:
        with conn.transaction():
            yield

    @contextlib.contextmanager
    def _read_snapshot(self, conn: psycopg.Connection[Any]) -> Iterator[None]:
        with conn.transaction():
            conn.execute(Q["repeatable_read"])
            yield

    def _lock_migrations(self, conn: psycopg.Connection[Any]) -> None:
        # Held until this transaction ends; a second migrating process waits here, then reads
        # the applied set only after the first committed, so it never applies a file twice.
        conn.execute(Q["lock_migrations"], (MIGRATION_LOCK_KEY,))

    def _ensure_migrations_table(self, conn: psycopg.Connection[Any]) -> None:
        if one_row(conn.execute(Q["migrations_table_exists"]))[0] is None:
            conn.execute(Q["create_migrations_table"])

    def _read_applied(self, conn: psycopg.Connection[Any]) -> list[AppliedMigration]:
        if one_row(conn.execute(Q["migrations_table_exists"]))[0] is None:
            return []
        rows = conn.execute(Q["applied_migrations"]).fetchall()
        return [
            AppliedMigration(version=v, name=n, checksum=c, applied_at=at.astimezone(dt.UTC))
            for v, n, c, at in rows
        ]

    def _execute_script(self, conn: psycopg.Connection[Any], sql: str) -> None:
        # Without parameters psycopg sends the text as one simple query, so a file may hold many
        # statements; they run inside the caller's transaction.
        conn.execute(sql)  # a trusted file shipped with the package

    def _record_migration(
        self, conn: psycopg.Connection[Any], migration: Migration
    ) -> AppliedMigration:
        (applied_at,) = one_row(
            conn.execute(
                Q["record_migration"],
                (migration.version, migration.name, migration.checksum),
            )
        )
        return AppliedMigration(
            version=migration.version,
            name=migration.name,
            checksum=migration.checksum,
            applied_at=applied_at.astimezone(dt.UTC),
        )
