"""The one place storage reaches below psycopg's public API: a statement sent and awaited on
the trio loop through psycopg's libpq wrapper (``Connection.pgconn``, ``psycopg.pq``), its
result read back and its error made a psycopg exception. The hot path uses it so that a batch's
write needs no worker thread (``events``); tests/test_storage_libpq.py fails if psycopg stops
offering what it relies on."""

from __future__ import annotations

from typing import Any

import psycopg
import psycopg.errors
import psycopg.pq
import trio

__all__ = ["execute_on_loop"]


async def execute_on_loop(
    conn: psycopg.Connection[Any], query: bytes, params: list[bytes]
) -> tuple[list[str | None], psycopg.Error | None]:
    """Run one statement (libpq placeholders ``$1``..., text parameters) on ``conn``, waiting
    for its socket on the trio loop; psycopg keeps its connections in non-blocking mode.

    Returns:
        The first row's values as text and None; or no values and the statement's error, as
        psycopg raises it (the connection is then ready for the next statement).

    Raises:
        psycopg.OperationalError: the connection failed (nothing is known of a commit).
        Cancellation leaves the connection mid-protocol: close it.
    """
    pgconn = conn.pgconn
    pgconn.send_query_params(query, params)
    fd = pgconn.socket
    while pgconn.flush():  # 1: part of the query is still to be sent
        await trio.lowlevel.wait_writable(fd)
    result = None
    while True:
        pgconn.consume_input()
        while pgconn.is_busy():
            await trio.lowlevel.wait_readable(fd)
            pgconn.consume_input()
        last = pgconn.get_result()
        if last is None:  # ready for the next query
            break
        result = last
    assert result is not None
    if result.status != psycopg.pq.ExecStatus.TUPLES_OK:
        return [], psycopg.errors.error_from_result(result, encoding=conn.info.encoding)
    values = (result.get_value(0, column) for column in range(result.nfields))
    return [None if value is None else value.decode() for value in values], None
