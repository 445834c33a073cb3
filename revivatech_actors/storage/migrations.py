"""Migrations: numbered plain SQL files, discovered, checked and planned by pure functions.

Files are named ``NNNN_name.sql`` (four digits, then lower-case letters, digits and ``_``), live in
one folder per engine (``sql/postgres``, ``sql/sqlite``, shipped as ``revivatech_actors._sql``) and
are numbered 0001, 0002, ... without gaps. Each is applied once, in order, in its own transaction
together with its ``schema_migrations`` row; the engines do that I/O (see ``Storage.migrate``).
Everything here is pure apart from reading the files, so it is tested without a database.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import importlib.resources
import re
from collections.abc import Iterable, Mapping, Sequence
from importlib.resources.abc import Traversable

import attrs

from ._errors import MigrationError

__all__ = [
    "AppliedMigration",
    "Migration",
    "MigrationError",
    "checksum",
    "discover_migrations",
    "load_migrations",
    "migrations_from_texts",
    "parse_migration_filename",
    "plan_migrations",
]

#: The package holding one folder of migrations per engine.
MIGRATIONS_PACKAGE = "revivatech_actors._sql"

#: Engine name (``Storage.engine``) or folder name -> folder under MIGRATIONS_PACKAGE.
ENGINE_FOLDERS = {"postgres": "postgres", "postgresql": "postgres", "sqlite": "sqlite"}

_FILENAME = re.compile(r"^(?P<version>[0-9]{4})_(?P<name>[a-z0-9_]+)\.sql$")


@attrs.frozen
class Migration:
    """One migration file: its number, name, SQL text and checksum."""

    version: int
    name: str
    sql: str = attrs.field(repr=False)
    checksum: str

    @property
    def filename(self) -> str:
        return f"{self.version:04d}_{self.name}.sql"


@attrs.frozen
class AppliedMigration:
    """One row of ``schema_migrations``: a migration applied to the database, and when."""

    version: int
    name: str
    checksum: str
    applied_at: dt.datetime

    @property
    def filename(self) -> str:
        return f"{self.version:04d}_{self.name}.sql"


def checksum(sql: str) -> str:
    """The sha256 (hex) of a migration's text, newlines normalised to ``\\n``.

    Normalising means a checkout with CRLF line endings does not look like an edited migration.
    """
    return hashlib.sha256(sql.replace("\r\n", "\n").encode("utf-8")).hexdigest()


def parse_migration_filename(filename: str) -> tuple[int, str] | None:
    """``"0003_add_index.sql"`` -> ``(3, "add_index")``; None for any other file name."""
    match = _FILENAME.match(filename)
    if match is None:
        return None
    return int(match["version"]), match["name"]


def migrations_from_texts(files: Mapping[str, str]) -> list[Migration]:
    """Build the ordered migration list from ``{file name: SQL text}`` and check it.

    Names not ending in ``.sql`` are ignored (a README may sit beside the files).

    Returns:
        The migrations sorted by version, numbered exactly 1..n.

    Raises:
        MigrationError: a ``.sql`` file is misnamed, two files share a number, a number is
            missing, the numbering does not start at 0001, or there are no migrations at all.
    """
    by_version: dict[int, Migration] = {}
    for filename in sorted(files):
        if not filename.endswith(".sql"):
            continue
        parsed = parse_migration_filename(filename)
        if parsed is None:
            msg = f"{filename}: migration files must be named NNNN_name.sql (name: a-z, 0-9, _)"
            raise MigrationError(msg)
        version, name = parsed
        if version in by_version:
            msg = f"{by_version[version].filename} and {filename} share the number {version:04d}"
            raise MigrationError(msg)
        text = files[filename]
        by_version[version] = Migration(
            version=version, name=name, sql=text, checksum=checksum(text)
        )
    if not by_version:
        raise MigrationError("no migration files (NNNN_name.sql) found")
    ordered = [by_version[v] for v in sorted(by_version)]
    if ordered[0].version != 1:
        msg = f"migrations must start at 0001, the first is {ordered[0].filename}"
        raise MigrationError(msg)
    for before, after in zip(ordered, ordered[1:], strict=False):
        if after.version != before.version + 1:
            msg = (
                f"migration {before.version + 1:04d} is missing "
                f"(between {before.filename} and {after.filename})"
            )
            raise MigrationError(msg)
    return ordered


def discover_migrations(folder: Traversable) -> list[Migration]:
    """Read and check every ``NNNN_name.sql`` in ``folder`` (a Path or importlib resource).

    Raises:
        MigrationError: as ``migrations_from_texts``, or the folder does not exist.
    """
    if not folder.is_dir():
        msg = f"migrations folder {folder} does not exist"
        raise MigrationError(msg)
    texts = {
        entry.name: entry.read_bytes().decode("utf-8")
        for entry in folder.iterdir()
        if entry.is_file() and entry.name.endswith(".sql")
    }
    try:
        return migrations_from_texts(texts)
    except MigrationError as exc:
        msg = f"{folder}: {exc}"
        raise MigrationError(msg) from None


def load_migrations(engine: str) -> list[Migration]:
    """The migrations shipped with the package for ``engine`` ("postgres"/"postgresql"/"sqlite")."""
    try:
        folder_name = ENGINE_FOLDERS[engine]
    except KeyError:
        msg = f"no migrations for engine {engine!r}; known: {', '.join(sorted(ENGINE_FOLDERS))}"
        raise ValueError(msg) from None
    return discover_migrations(importlib.resources.files(MIGRATIONS_PACKAGE).joinpath(folder_name))


def plan_migrations(
    available: Sequence[Migration], applied: Iterable[AppliedMigration]
) -> list[Migration]:
    """Which migrations still have to run, in order, given those already applied.

    Args:
        available: the migration files, as returned by ``migrations_from_texts`` (1..n).
        applied: the rows of ``schema_migrations``.

    Returns:
        The pending migrations in version order (empty when the database is up to date).

    Raises:
        MigrationError: an applied migration's file changed since (checksum differs; the message
            names the file), the database has a migration no file describes (a newer release
            migrated it), or a pending migration is numbered below an applied one.
    """
    files = {m.version: m for m in available}
    applied_versions: set[int] = set()
    for row in applied:
        migration = files.get(row.version)
        if migration is None:
            msg = (
                f"the database has migration {row.filename} but no such file exists here; "
                "was it migrated by a newer release?"
            )
            raise MigrationError(msg)
        if row.checksum != migration.checksum:
            msg = (
                f"{migration.filename} was changed after it was applied "
                f"(applied sha256 {row.checksum[:12]}..., "
                f"file sha256 {migration.checksum[:12]}...); "
                "never edit an applied migration, add a new file instead"
            )
            raise MigrationError(msg)
        applied_versions.add(row.version)
    pending = [m for m in available if m.version not in applied_versions]
    if pending and applied_versions and pending[0].version < max(applied_versions):
        msg = (
            f"{pending[0].filename} is not applied but {files[max(applied_versions)].filename} is; "
            "migrations must be applied in order"
        )
        raise MigrationError(msg)
    return pending
