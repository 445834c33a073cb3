"""PostgreSQL storage through psycopg 3's *blocking* API in worker threads.

psycopg's async API does not run under trio (it needs an asyncio loop), so calls go through
``trio.to_thread.run_sync`` with one ``CapacityLimiter(1)`` per connection (see
``_connections``). One exception, the hot path: a batch of events without dead letters is one
statement, sent and awaited on the event loop itself through libpq's non-blocking API
(``libpq.execute_on_loop``), since under load every thread hop waits for the GIL
(docs/performance.md). This package is the only one of the project that imports psycopg, beside
``storage/original.py`` (the original service's tables, read by ``import-original``).

Connections run in autocommit mode; transactions are explicit (``conn.transaction()``), so no
session is ever left "idle in transaction" after a read.

One module per aggregate, each implementing the hooks of its namesake in ``_interface``; the
SQL is in ``sql/postgres/queries/<aggregate>.sql``.
"""

from __future__ import annotations

from .._interface import Storage
from .._queries import load_queries
from .connection import MIGRATION_LOCK_KEY, PostgresConnection
from .events import PostgresEvents
from .funnel import PostgresFunnel
from .history import PostgresHistory
from .lifecycle import PostgresLifecycle
from .log import PARTITIONS_LOCK_KEY, PostgresLog
from .profiles import PostgresProfiles
from .realtime import PostgresRealtime
from .reports import PostgresReports
from .scores import PostgresScores

__all__ = ["MIGRATION_LOCK_KEY", "PARTITIONS_LOCK_KEY", "PostgresStorage"]


class PostgresStorage(
    PostgresConnection,
    PostgresEvents,
    PostgresProfiles,
    PostgresScores,
    PostgresFunnel,
    PostgresReports,
    PostgresRealtime,
    PostgresLog,
    PostgresLifecycle,
    PostgresHistory,
    Storage,
):
    """Storage in a PostgreSQL database (tables in the connection's current schema)."""

    engine = "postgresql"
    migrations_folder = "postgres"
    parallel_writes = True
    announces_log = True
    _queries = load_queries("postgres")
