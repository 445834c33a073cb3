"""The original RevivaTech service's PostgreSQL database, read for ``import-original``.

Read-only, through psycopg 3's blocking API in a worker thread (one ``CapacityLimiter(1)``: one
connection, one thread at a time), one chunk of rows per thread hop. Everything is read in one
``REPEATABLE READ, READ ONLY`` transaction, so the row counts behind the progress bar and the rows
read agree, whatever the original still writes meanwhile. Each table is read with a server-side
cursor in keyset order ``(created_at NULLS FIRST, id)`` (ids compared byte-wise, ``COLLATE "C"``),
from just after a given position: one sort per run, rows streamed in chunks, and a resumed run
starts where the last one's checkpoint says.

Beside ``storage/postgres``, the only module that imports psycopg: reading another service's schema
is not this service's storage interface. Nothing shown to a user ever carries the URL's password.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any, TypeVar

import attrs
import psycopg
import psycopg.conninfo
import psycopg.rows
import trio
from psycopg import sql

from ..domain.original import REQUIRED_COLUMNS
from ..domain.secrets import mask_password
from ._errors import StorageError
from ._messages import first_line

__all__ = ["OriginalSource", "Position", "SourceError"]

T = TypeVar("T")


class SourceError(StorageError):
    """The original's database cannot be read (unreachable, or not the original's schema)."""


@attrs.frozen
class Position:
    """A row's place in keyset order: the last row handled (``created_at`` as stored: naive for
    ``TIMESTAMP WITHOUT TIME ZONE``)."""

    created_at: datetime | None
    id: str

    def as_json(self) -> dict[str, str | None]:
        return {
            "created_at": None if self.created_at is None else self.created_at.isoformat(),
            "id": self.id,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Position:
        at = data.get("created_at")
        return cls(None if at is None else datetime.fromisoformat(at), str(data["id"]))


class OriginalSource:
    """See the module docstring. ``open()``, then ``tables()``, ``count()`` and ``open_cursor()`` /
    ``fetch()`` per table, then ``close()``."""

    def __init__(self, url: str, *, connect_timeout: float = 10.0) -> None:
        self._url = url
        self._connect_timeout = connect_timeout
        self._conn: psycopg.Connection[Any] | None = None
        self._limiter = trio.CapacityLimiter(1)
        self._columns: dict[str, dict[str, str]] = {}  # table -> column -> data type
        self._cursors: dict[str, psycopg.ServerCursor[Any]] = {}

    @property
    def url_for_display(self) -> str:
        return mask_password(self._url)

    async def _run(self, fn: Callable[[], T]) -> T:
        try:
            return await trio.to_thread.run_sync(fn, limiter=self._limiter)
        except psycopg.Error as exc:
            raise SourceError(self._scrub(first_line(exc))) from None

    def _scrub(self, message: str) -> str:
        """``message`` without the URL's password (a driver may quote its connection string)."""
        try:
            password = psycopg.conninfo.conninfo_to_dict(self._url).get("password")
        except psycopg.Error:
            password = None
        if password:
            message = message.replace(str(password), "***")
        return f"{self.url_for_display}: {message}"

    async def open(self, tables: Sequence[str]) -> dict[str, dict[str, str]]:
        """Connect, begin the snapshot and return, of ``tables``, those present:
        name -> column -> type.

        Raises:
            SourceError: unreachable, or a table lacks the columns its order needs.
        """

        def connect() -> dict[str, dict[str, str]]:
            conn = psycopg.connect(
                self._url,
                connect_timeout=max(1, round(self._connect_timeout)),
                autocommit=False,
                row_factory=psycopg.rows.dict_row,
            )
            conn.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
            conn.read_only = True
            self._conn = conn
            rows = conn.execute(
                "SELECT table_name, column_name, data_type FROM information_schema.columns "
                "WHERE table_schema = current_schema() AND table_name = ANY(%s)",
                [list(tables)],
            ).fetchall()
            found: dict[str, dict[str, str]] = {}
            for row in rows:
                found.setdefault(row["table_name"], {})[row["column_name"]] = row["data_type"]
            return found

        try:
            found = await self._run(connect)
        except SourceError:
            await self.close()
            raise
        for table, columns in found.items():
            missing = [name for name in REQUIRED_COLUMNS if name not in columns]
            if missing:
                await self.close()
                missing_text = ", ".join(missing)
                msg = (
                    f"table {table} has no column {missing_text}: not the original service's schema"
                )
                raise SourceError(self._scrub(msg))
        self._columns = found
        return found

    def _select(
        self, table: str, columns: Sequence[str], after: Position | None
    ) -> tuple[sql.Composed, list[Any]]:
        present = self._columns[table]
        fields: list[sql.Composable] = []
        for name in columns:
            if name not in present:
                fields.append(sql.SQL("NULL AS {}").format(sql.Identifier(name)))
            elif name == "ip_address" and present[name] == "inet":  # as text, without a netmask
                fields.append(sql.SQL("host({0}) AS {0}").format(sql.Identifier(name)))
            else:
                fields.append(sql.Identifier(name))
        where, params = self._after(after)
        query = sql.SQL(
            'SELECT {} FROM {} {} ORDER BY created_at NULLS FIRST, id::text COLLATE "C"'
        ).format(sql.SQL(", ").join(fields), sql.Identifier(table), where)
        return query, params

    @staticmethod
    def _after(after: Position | None) -> tuple[sql.SQL, list[Any]]:
        if after is None:
            return sql.SQL(""), []
        if after.created_at is None:
            return (
                sql.SQL(
                    'WHERE (created_at IS NULL AND id::text COLLATE "C" > %s)'
                    " OR created_at IS NOT NULL"
                ),
                [after.id],
            )
        return (
            sql.SQL('WHERE created_at > %s OR (created_at = %s AND id::text COLLATE "C" > %s)'),
            [after.created_at, after.created_at, after.id],
        )

    async def count(self, table: str, after: Position | None) -> int:
        """Rows of ``table`` after ``after`` (all with None), in the snapshot."""
        where, params = self._after(after)
        query = sql.SQL("SELECT count(*) AS n FROM {} {}").format(sql.Identifier(table), where)

        def run() -> int:
            assert self._conn is not None
            row = self._conn.execute(query, params).fetchone()
            assert row is not None  # count(*) without GROUP BY answers one row
            return int(row["n"])

        return await self._run(run)

    async def open_cursor(self, table: str, columns: Sequence[str], after: Position | None) -> None:
        """Start reading ``table``'s ``columns`` (absent ones read as NULL) after ``after``."""
        query, params = self._select(table, columns, after)

        def run() -> None:
            assert self._conn is not None
            cursor = self._conn.cursor(
                name=f"revivatech_import_{table}", row_factory=psycopg.rows.dict_row
            )
            cursor.execute(query, params)
            self._cursors[table] = cursor

        await self._run(run)

    async def fetch(self, table: str, size: int) -> list[dict[str, Any]]:
        """The next ``size`` rows of ``table`` (fewer at its end, none after)."""
        cursor = self._cursors[table]
        return await self._run(lambda: cursor.fetchmany(size))

    async def close(self) -> None:
        """End the snapshot and disconnect (shielded: runs even while the import is cancelled)."""
        conn, self._conn = self._conn, None
        self._cursors.clear()
        if conn is not None:
            with trio.CancelScope(shield=True):
                await trio.to_thread.run_sync(conn.close, limiter=self._limiter)
