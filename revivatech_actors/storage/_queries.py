"""Named queries: the SQL of each engine, read once from plain files and called by name.

Each engine's queries live in ``sql/<engine>/queries/<aggregate>.sql`` (shipped, like the
migrations, as ``revivatech_actors._sql``). In a file, ``-- name: insert_events`` starts a query
that runs until the next ``-- name:`` line. Lines that hold only a comment document the query and
are not sent to the database. ``{{other}}`` inside a query stands for the text of the query named
``other`` (a fragment written once, such as the columns of a profile row); any other ``{marker}``
is left for the engine's builder to fill (IN-lists, the columns a batch holds).

Query names are unique across an engine's files, so a query is found by name alone::

    queries = load_queries("postgres")
    conn.execute(queries["load_profiles"], ...)
"""

from __future__ import annotations

import functools
import importlib.resources
import re
from collections.abc import Mapping
from importlib.resources.abc import Traversable
from types import MappingProxyType

__all__ = ["QUERIES_FOLDER", "load_queries", "parse_queries", "queries_from_folder"]

#: Under each engine's folder of ``revivatech_actors._sql``: the folder of query files. A folder
#: of its own, so the migration loader (which reads ``NNNN_name.sql`` files) never sees them.
QUERIES_FOLDER = "queries"

_PACKAGE = "revivatech_actors._sql"
_NAME = re.compile(r"^--\s*name:\s*(?P<name>[a-z][a-z0-9_]*)\s*$")
_INCLUDE = re.compile(r"\{\{(?P<name>[a-z][a-z0-9_]*)\}\}")


def parse_queries(text: str, source: str = "<text>") -> dict[str, str]:
    """``{name: SQL}`` of the queries in one file's ``text`` (fragments not yet included).

    Raises:
        ValueError: text before the first ``-- name:`` line, a name given twice, or an empty
            query; the message names ``source``.
    """
    queries: dict[str, str] = {}
    name: str | None = None
    lines: list[str] = []

    def finish() -> None:
        if name is None:
            return
        sql = "\n".join(lines).strip()
        if not sql:
            msg = f"{source}: query {name!r} is empty"
            raise ValueError(msg)
        queries[name] = sql

    for number, line in enumerate(text.splitlines(), 1):
        match = _NAME.match(line.strip())
        if match is not None:
            finish()
            name, lines = match["name"], []
            if name in queries:
                msg = f"{source}:{number}: query {name!r} is named twice"
                raise ValueError(msg)
        elif line.strip().startswith("--") or not line.strip():
            continue  # documentation (or spacing): not sent
        elif name is None:
            msg = f"{source}:{number}: SQL before the first '-- name:' line"
            raise ValueError(msg)
        else:
            lines.append(line.rstrip())
    finish()
    return queries


def _include(queries: dict[str, str], source: str) -> dict[str, str]:
    """Each query with its ``{{fragment}}`` markers replaced by the fragments' text."""

    def expand(name: str, seen: tuple[str, ...]) -> str:
        if name in seen:
            msg = f"{source}: query {name!r} includes itself ({' -> '.join((*seen, name))})"
            raise ValueError(msg)

        def replace(match: re.Match[str]) -> str:
            included = match["name"]
            if included not in queries:
                msg = f"{source}: query {name!r} includes {included!r}, which no file names"
                raise ValueError(msg)
            return expand(included, (*seen, name))

        return _INCLUDE.sub(replace, queries[name])

    return {name: expand(name, ()) for name in queries}


def queries_from_folder(folder: Traversable) -> dict[str, str]:
    """Every query of every ``*.sql`` file in ``folder``, fragments included.

    Raises:
        ValueError: as ``parse_queries``, or two files name the same query.
    """
    found: dict[str, str] = {}
    for entry in sorted(folder.iterdir(), key=lambda e: e.name):
        if not (entry.is_file() and entry.name.endswith(".sql")):
            continue
        source = f"{folder.name}/{entry.name}"
        for name, sql in parse_queries(entry.read_text("utf-8"), source).items():
            if name in found:
                msg = f"{source}: query {name!r} is also named in another file of {folder.name}"
                raise ValueError(msg)
            found[name] = sql
    return _include(found, str(folder))


@functools.cache
def load_queries(engine_folder: str) -> Mapping[str, str]:
    """The queries shipped for an engine (``"postgres"`` or ``"sqlite"``), read once."""
    root = importlib.resources.files(_PACKAGE).joinpath(engine_folder).joinpath(QUERIES_FOLDER)
    return MappingProxyType(queries_from_folder(root))
