"""Connections to a SQLite file: WAL, ``synchronous=FULL``, explicit transactions, health
checks, and the migrations' transactions."""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import pathlib
import sqlite3
import uuid
from collections.abc import Iterator
from typing import Any, ClassVar

from .._errors import StorageError, StorageMisconfigured, StorageUnavailable
from .._messages import first_line
from .._migrate import MigratingStorage
from ..migrations import AppliedMigration, Migration
from .events import CREATE_STAGING
from .queries import Q
from .timestamps import format_timestamp, parse_timestamp

__all__ = [
    "SQLITE_BUSY_TIMEOUT",
    "SQLITE_SYNCHRONOUS",
    "SQLiteConnection",
    "database_path",
    "read_snapshot",
    "split_statements",
]

logger = logging.getLogger(__name__)

#: Seconds a connection waits for another connection's write lock before giving up with
#: SQLITE_BUSY (reported as StorageUnavailable). Writes here are short group commits; waiting a
#: few seconds rides out another process's migration or checkpoint without failing a flush.
SQLITE_BUSY_TIMEOUT = 5.0

#: Durability. In WAL mode ``synchronous=NORMAL`` survives an application crash but a commit can
#: be lost on power failure or an OS crash, because the WAL is only fsynced at checkpoints. The
#: service answers "stored" after commit, so the commit must be on disk: FULL fsyncs the WAL at
#: every commit. Group commit keeps the cost to one fsync per batch, not per event.
SQLITE_SYNCHRONOUS = "FULL"

#: Error names (``sqlite3.Error.sqlite_errorname``) that mean "cannot reach the data right now".
_UNAVAILABLE_ERRORS = (
    "SQLITE_BUSY",
    "SQLITE_LOCKED",
    "SQLITE_CANTOPEN",
    "SQLITE_IOERR",
    "SQLITE_FULL",
    "SQLITE_NOTADB",
    "SQLITE_READONLY",
    "SQLITE_PERM",
)

_MEMORY = ":memory:"

_PREFIX = "sqlite:///"


def database_path(url: str) -> str:
    """The file named by a SQLite URL: ``sqlite:///rel.db`` -> ``rel.db``,
    ``sqlite:////abs.db`` -> ``/abs.db``, ``sqlite:///:memory:`` -> ``:memory:``.

    Raises:
        ValueError: not a ``sqlite:///`` URL, no path, or query parameters (not supported).
    """
    if not url.lower().startswith(_PREFIX):
        msg = (
            f"not a SQLite URL: {url!r} (expected sqlite:///relative.db or sqlite:////absolute.db)"
        )
        raise ValueError(msg)
    path = url[len(_PREFIX) :]
    if not path:
        msg = f"SQLite URL {url!r} names no file"
        raise ValueError(msg)
    if "?" in path:
        msg = f"SQLite URL {url!r}: query parameters are not supported"
        raise ValueError(msg)
    return path


def split_statements(script: str) -> list[str]:
    """Split a SQL script into single statements, as ``sqlite3`` executes one at a time.

    Uses ``sqlite3.complete_statement``, so semicolons inside strings, comments and trigger
    bodies do not split. A trailing part that is not a complete statement is returned as is (it is
    either only comments, which execute as nothing, or an error SQLite will report).

    ``executescript`` is not used because it commits the open transaction first.
    """
    statements: list[str] = []
    start = 0
    for index, char in enumerate(script):
        if char == ";" and sqlite3.complete_statement(script[start : index + 1]):
            statements.append(script[start : index + 1].strip())
            start = index + 1
    rest = script[start:].strip()
    if rest:
        statements.append(rest)
    return statements


@contextlib.contextmanager
def read_snapshot(conn: sqlite3.Connection) -> Iterator[None]:
    """A read transaction: its statements see one state of the database, and take no write lock."""
    if conn.in_transaction:  # within another: that one's snapshot
        yield
        return
    conn.execute("BEGIN DEFERRED")
    try:
        yield
    finally:
        if conn.in_transaction:
            conn.execute("COMMIT")


class SQLiteConnection(MigratingStorage):
    """The connection hooks of ``_connections`` and the migration hooks of ``_migrate``."""

    _driver_errors: ClassVar[tuple[type[Exception], ...]] = (sqlite3.Error,)

    def __init__(self, url: str, **options: Any) -> None:
        """See ``Storage.__init__`` for ``options``; the URL is parsed (not connected) here."""
        super().__init__(url, **options)
        path = database_path(url)
        self._memory_uri: str | None = None
        self._path: pathlib.Path | None = None
        if path == _MEMORY:
            self._memory_uri = f"file:revivatech-{uuid.uuid4().hex}?mode=memory&cache=shared"
        else:
            # Absolute now, so a later change of working directory cannot move the database.
            self._path = pathlib.Path(path).absolute()

    @property
    def path(self) -> pathlib.Path | None:
        """The database file (absolute), or None for an in-memory database."""
        return self._path

    def _where(self) -> str:
        return f"SQLite database {self._path if self._path is not None else _MEMORY}"

    def _connect(self, purpose: str) -> sqlite3.Connection:
        options: dict[str, Any] = {
            "timeout": SQLITE_BUSY_TIMEOUT,
            "check_same_thread": False,
            "isolation_level": None,  # autocommit; transactions are explicit (BEGIN IMMEDIATE)
        }
        if self._memory_uri is not None:
            conn = sqlite3.connect(self._memory_uri, uri=True, **options)
        elif purpose == "writer":
            assert self._path is not None
            # The file is created, its folder never: a typo in the URL must not make folders.
            if not self._path.parent.is_dir():
                msg = (
                    f"the folder {self._path.parent} does not exist (create it, or set "
                    "storage.url or REVIVATECH_STORAGE_URL to a file in an existing folder)"
                )
                raise StorageMisconfigured(msg)
            conn = sqlite3.connect(self._path, **options)
        else:
            # mode=rw: the health connection never creates a file, so a deleted database shows
            # as unavailable instead of as a new empty one.
            assert self._path is not None
            conn = sqlite3.connect(f"{self._path.as_uri()}?mode=rw", uri=True, **options)
        try:
            if purpose == "writer":
                mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
                if mode.lower() not in ("wal", "memory"):
                    logger.warning(
                        "%s: WAL journal refused (%s); readers will wait for writers",
                        self._where(),
                        mode,
                    )
                conn.execute(f"PRAGMA synchronous = {SQLITE_SYNCHRONOUS}")
                conn.execute("PRAGMA foreign_keys = ON")
                conn.execute(CREATE_STAGING)
            else:
                conn.execute("PRAGMA query_only = ON")
                if self._memory_uri is not None:
                    # Shared-cache readers take table locks; without this a health read during a
                    # write transaction fails with SQLITE_LOCKED. Only for the in-memory test DB.
                    conn.execute("PRAGMA read_uncommitted = ON")
        except BaseException:
            conn.close()
            raise
        return conn

    def _is_usable(self, conn: sqlite3.Connection) -> bool:
        try:
            conn.total_changes  # noqa: B018 - raises ProgrammingError once closed
        except sqlite3.ProgrammingError:
            return False
        return True

    def _close_connection(self, conn: sqlite3.Connection) -> None:
        conn.close()

    def _translate_error(self, exc: Exception) -> StorageError:
        message = f"{self._where()}: {first_line(exc)}"
        name = getattr(exc, "sqlite_errorname", None) or ""
        closed = isinstance(exc, sqlite3.ProgrammingError) and "closed" in str(exc)
        if closed or name.startswith(_UNAVAILABLE_ERRORS):
            return StorageUnavailable(message)
        return StorageError(message)

    def _ping_blocking(self, conn: sqlite3.Connection) -> None:
        conn.execute(Q["ping"]).fetchone()

    def _table_names_blocking(self, conn: sqlite3.Connection) -> set[str]:
        rows = conn.execute(Q["table_names"]).fetchall()
        return {name for (name,) in rows}

    @contextlib.contextmanager
    def _transaction(self, conn: sqlite3.Connection) -> Iterator[None]:
        conn.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")

    def _read_snapshot(self, conn: sqlite3.Connection) -> contextlib.AbstractContextManager[None]:
        return read_snapshot(conn)

    def _lock_migrations(self, conn: sqlite3.Connection) -> None:
        """Nothing to do: ``BEGIN IMMEDIATE`` already holds the database's write lock."""

    def _ensure_migrations_table(self, conn: sqlite3.Connection) -> None:
        conn.execute(Q["create_migrations_table"])

    def _read_applied(self, conn: sqlite3.Connection) -> list[AppliedMigration]:
        exists = conn.execute(Q["migrations_table_exists"]).fetchone()
        if exists is None:
            return []
        rows = conn.execute(Q["applied_migrations"]).fetchall()
        return [
            AppliedMigration(version=v, name=n, checksum=c, applied_at=parse_timestamp(at))
            for v, n, c, at in rows
        ]

    def _execute_script(self, conn: sqlite3.Connection, sql: str) -> None:
        for statement in split_statements(sql):
            conn.execute(statement)

    def _record_migration(self, conn: sqlite3.Connection, migration: Migration) -> AppliedMigration:
        applied_at = format_timestamp(dt.datetime.now(dt.UTC))
        conn.execute(
            Q["record_migration"],
            (migration.version, migration.name, migration.checksum, applied_at),
        )
        return AppliedMigration(
            version=migration.version,
            name=migration.name,
            checksum=migration.checksum,
            applied_at=parse_timestamp(applied_at),
        )
