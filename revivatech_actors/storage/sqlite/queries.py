"""The named queries of ``sql/sqlite/queries/*.sql``, and the IN-lists some of them take."""

from __future__ import annotations

from .._queries import load_queries

__all__ = ["MAX_PARAMETERS", "Q", "marks", "with_marks"]

#: The named queries of ``sql/sqlite/queries/*.sql``.
Q = load_queries("sqlite")

#: Bound parameters per statement (SQLite's limit is 32766 since 3.32; stay far below it).
MAX_PARAMETERS = 500


def marks(count: int) -> str:
    """An IN-list of ``count`` placeholders (NULL for none: matches nothing)."""
    return ", ".join("?" * count) or "NULL"


def with_marks(name: str, count: int) -> str:
    """The query ``name`` with its ``{marks}`` IN-list of ``count`` placeholders."""
    return Q[name].replace("{marks}", marks(count))
