"""SQLite storage: the standard library's ``sqlite3``, the embedded default engine.

One writer connection and one health connection (WAL mode lets the health connection read while
the writer writes). Connections are made with ``check_same_thread=False`` and used by one worker
thread at a time (see ``_connections.Lane``). Transactions are explicit: connections run in
autocommit mode (``isolation_level=None``) and ``BEGIN IMMEDIATE`` takes the write lock up
front, so two writers never deadlock upgrading a read lock.

Values: uuids and timestamps are TEXT (timestamps UTC, fixed width, see ``timestamps``), JSON is
TEXT.

One module per aggregate, each implementing the hooks of its namesake in ``_interface``; the
SQL is in ``sql/sqlite/queries/<aggregate>.sql``.
"""

from __future__ import annotations

from .._interface import Storage
from .connection import (
    SQLITE_BUSY_TIMEOUT,
    SQLITE_SYNCHRONOUS,
    SQLiteConnection,
    database_path,
    split_statements,
)
from .events import SQLiteEvents
from .funnel import SQLiteFunnel
from .history import SQLiteHistory
from .lifecycle import SQLiteLifecycle
from .log import SQLiteLog
from .profiles import SQLiteProfiles
from .queries import Q
from .realtime import SQLiteRealtime
from .reports import SQLiteReports
from .scores import SQLiteScores
from .timestamps import TIMESTAMP_FORMAT, format_timestamp, parse_timestamp

__all__ = [
    "SQLITE_BUSY_TIMEOUT",
    "SQLITE_SYNCHRONOUS",
    "TIMESTAMP_FORMAT",
    "SQLiteStorage",
    "database_path",
    "format_timestamp",
    "parse_timestamp",
    "split_statements",
]


class SQLiteStorage(
    SQLiteConnection,
    SQLiteEvents,
    SQLiteProfiles,
    SQLiteScores,
    SQLiteFunnel,
    SQLiteReports,
    SQLiteRealtime,
    SQLiteLog,
    SQLiteLifecycle,
    SQLiteHistory,
    Storage,
):
    """Storage in one SQLite file (or a private in-memory database for tests).

    The file is created on ``open()``; its folder must exist (else StorageMisconfigured, naming
    it). WAL journal, ``synchronous=FULL`` (a committed transaction survives power loss),
    foreign keys on. With ``:memory:`` both connections share one private in-memory database
    (shared cache) that vanishes on close.
    """

    engine = "sqlite"
    migrations_folder = "sqlite"
    _queries = Q
