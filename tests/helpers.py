"""Test helpers: build events, read a database directly (independently of the code under test),
read a raw connection until the server closes it,
and tell whether a process still runs."""

from __future__ import annotations

import sqlite3
import uuid
from datetime import UTC, datetime, timedelta

import trio

from revivatech_actors.messages import Event

BASE_TIME = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)


def make_event(n: int = 0, **fields) -> Event:
    values = {
        "event_id": str(uuid.uuid4()),
        "user_fingerprint": f"user-{n % 7}",
        "session_id": f"session-{n % 3}",
        "event_type": "page_view",
        "timestamp": BASE_TIME + timedelta(seconds=n),
        "received_at": BASE_TIME + timedelta(seconds=n, milliseconds=5),
        "page_url": f"https://revivatech.example/page/{n}",
        "properties": {"n": n},
    }
    values.update(fields)
    return Event(**values)


def query(url: str, sql: str, params: tuple = ()) -> list[tuple]:
    """Rows of ``sql`` run straight on the database behind ``url`` (sqlite3 or psycopg)."""
    if url.startswith("sqlite:///"):
        with sqlite3.connect(url.removeprefix("sqlite:///")) as conn:
            return conn.execute(sql.replace("%s", "?"), params).fetchall()
    import psycopg

    with psycopg.connect(url) as conn:
        return conn.execute(sql, params).fetchall()


def process_alive(pid: int) -> bool:
    """Whether process ``pid`` exists and is not a zombie (Linux /proc)."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rpartition(")")[2].split()[0] != "Z"
    except FileNotFoundError:
        return False


async def read_until_closed(stream: trio.SocketStream, timeout: float) -> tuple[bytes, bool]:
    """(what the server sent, whether it closed the connection) within ``timeout`` seconds."""
    received = b""
    with trio.move_on_after(timeout):
        while True:
            try:
                chunk = await stream.receive_some(65536)
            except trio.BrokenResourceError:  # reset: closed with our bytes unread
                return received, True
            if not chunk:
                return received, True
            received += chunk
    return received, False
