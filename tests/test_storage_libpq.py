"""What ``storage/postgres/libpq.py`` relies on below psycopg's public API: these tests fail if
a psycopg release changes it, before the hot path of every batch does."""

from __future__ import annotations

import psycopg
import psycopg.errors
import psycopg.pq
import pytest

from revivatech_actors.storage.postgres.libpq import execute_on_loop

pytestmark = pytest.mark.postgres


def test_psycopg_still_offers_the_libpq_calls_used():
    assert callable(psycopg.errors.error_from_result)
    assert psycopg.pq.ExecStatus.TUPLES_OK


async def test_a_statement_runs_on_the_loop_and_answers_its_first_row(postgres_url):
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        for name in ("send_query_params", "flush", "consume_input", "is_busy", "get_result"):
            assert callable(getattr(conn.pgconn, name)), name
        row, error = await execute_on_loop(conn, b"SELECT $1::int + 1, NULL, 'x'", [b"41"])
        assert (row, error) == (["42", None, "x"], None)
        assert conn.execute("SELECT 2").fetchone() == (2,)  # ready for the next statement


async def test_a_refused_statement_comes_back_as_psycopgs_error(postgres_url):
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        row, error = await execute_on_loop(conn, b"SELECT $1::int", [b"not a number"])
        assert row == []
        assert isinstance(error, psycopg.DataError)  # as the bisection's row errors expect
        assert error.sqlstate == "22P02"
        assert conn.execute("SELECT 3").fetchone() == (3,)
