"""The one row of a statement that always answers one."""

from __future__ import annotations

from typing import TypeVar

import psycopg

__all__ = ["one_row"]

Row = TypeVar("Row")


def one_row(cursor: psycopg.Cursor[Row]) -> Row:
    """The row of a statement that answers exactly one (an aggregate without GROUP BY, a
    ``SELECT`` of expressions, an ``INSERT … RETURNING`` of one row): psycopg's ``fetchone()``
    is typed as maybe None for every statement."""
    row = cursor.fetchone()
    assert row is not None, "the statement answered no row"
    return row
