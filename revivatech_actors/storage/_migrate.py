"""The migration loop: applies what ``migrations`` plans, one transaction per file.

``migrations`` reads and checks the files (pure); this module is the I/O around it, through
the engine's hooks (lock, read ``schema_migrations``, run a script, record a row).
"""

from __future__ import annotations

import abc
import logging
from collections.abc import Sequence
from importlib.resources.abc import Traversable
from typing import Any, ClassVar

from ._connections import WRITER, StorageConnections
from ._errors import MigrationError, StorageUnavailable
from ._messages import first_line
from .migrations import (
    AppliedMigration,
    Migration,
    discover_migrations,
    load_migrations,
    plan_migrations,
)

__all__ = ["MigratingStorage"]

logger = logging.getLogger(__name__)


class MigratingStorage(StorageConnections):
    """``applied_migrations`` and ``migrate``, and the hooks an engine supplies for them."""

    #: Folder of migrations under ``revivatech_actors._sql``.
    migrations_folder: ClassVar[str]
    #: A folder of ``NNNN_name.sql`` files to use instead of the shipped ones (tests, tools).
    _migrations_dir: Traversable | None = None

    async def applied_migrations(self) -> list[AppliedMigration]:
        """The rows of ``schema_migrations`` in version order (empty before the first migrate).

        Raises:
            StorageUnavailable: the database cannot be reached or the storage is not open.
            StorageError: the query failed.
        """
        return await self._call(self._open_lane(WRITER), self._read_applied, abandon=False)

    async def migrate(self) -> list[AppliedMigration]:
        """Apply the pending migrations, in order, and return those applied by this call.

        Guarantees: each migration runs in its own transaction together with its
        ``schema_migrations`` row, so it is applied completely or not at all. Several processes
        may migrate one database at once: each transaction first takes an exclusive migration
        lock (an advisory lock on PostgreSQL, ``BEGIN IMMEDIATE`` on SQLite) and only then reads
        what is applied, so every migration is applied exactly once. Cancelling stops between
        migrations.

        Raises:
            MigrationError: the files are inconsistent, an applied file was edited (the message
                names it), or a migration failed (named; its transaction was rolled back).
            StorageUnavailable: the database cannot be reached or the storage is not open.
        """
        lane = self._open_lane(WRITER)
        available = self._available_migrations()
        applied_now: list[AppliedMigration] = []
        while True:
            # One worker-thread hop per migration: lock, read the applied set, apply the first
            # pending one, commit. Re-reading each time is what makes concurrent runs safe.
            row = await self._call(
                lane, lambda conn: self._migrate_one_blocking(conn, available), abandon=False
            )
            if row is None:
                return applied_now
            # Debug: `migrate` prints each one and `serve` logs them in its start line.
            logger.debug("applied migration %s to %s", row.filename, self.url_for_display)
            applied_now.append(row)

    def _available_migrations(self) -> list[Migration]:
        if self._migrations_dir is not None:
            return discover_migrations(self._migrations_dir)
        return load_migrations(self.migrations_folder)

    def _migrate_one_blocking(
        self, conn: Any, available: Sequence[Migration]
    ) -> AppliedMigration | None:
        with self._transaction(conn):
            self._lock_migrations(conn)
            self._ensure_migrations_table(conn)
            pending = plan_migrations(available, self._read_applied(conn))
            if not pending:
                return None
            migration = pending[0]
            try:
                self._execute_script(conn, migration.sql)
            except self._driver_errors as exc:
                translated = self._translate_error(exc)
                if isinstance(translated, StorageUnavailable):
                    raise translated from exc
                msg = f"{migration.filename} failed and was rolled back: {first_line(exc)}"
                raise MigrationError(msg) from exc
            return self._record_migration(conn, migration)

    # ---------------------------------------------------------------- engine hooks (blocking)

    @abc.abstractmethod
    def _lock_migrations(self, conn: Any) -> None:
        """Inside ``_transaction``: block until no other process is migrating this database."""

    @abc.abstractmethod
    def _ensure_migrations_table(self, conn: Any) -> None: ...

    @abc.abstractmethod
    def _read_applied(self, conn: Any) -> list[AppliedMigration]:
        """The rows of ``schema_migrations`` by version; [] when the table does not exist."""

    @abc.abstractmethod
    def _execute_script(self, conn: Any, sql: str) -> None:
        """Run every statement of a migration file inside the current transaction."""

    @abc.abstractmethod
    def _record_migration(self, conn: Any, migration: Migration) -> AppliedMigration:
        """Insert the ``schema_migrations`` row for ``migration`` and return it."""
