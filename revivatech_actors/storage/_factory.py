"""``open_storage``: the engine for a URL. The only module that names the engines, each
imported only when its scheme is used (so SQLite alone never imports psycopg)."""

from __future__ import annotations

from importlib.resources.abc import Traversable
from typing import Any

from ..domain.secrets import mask_password
from ._connections import DEFAULT_CONNECT_TIMEOUT, DEFAULT_PING_TIMEOUT
from ._interface import Storage

__all__ = ["open_storage"]


def open_storage(
    url: str,
    *,
    connect_timeout: float = DEFAULT_CONNECT_TIMEOUT,
    ping_timeout: float = DEFAULT_PING_TIMEOUT,
    migrations_dir: Traversable | None = None,
) -> Storage:
    """The storage for ``url``, not yet connected: ``await storage.open()`` or ``async with``.

    URLs: ``sqlite:///relative.db``, ``sqlite:////absolute.db``, ``sqlite:///:memory:`` (tests),
    ``postgresql://user:password@host:port/database`` (``postgres://`` too; libpq parameters such
    as ``?sslmode=require`` pass through).

    Raises:
        ValueError: unknown scheme, a malformed SQLite URL, or a non-positive timeout.
    """
    scheme = url.partition(":")[0].lower()
    options: dict[str, Any] = {
        "connect_timeout": connect_timeout,
        "ping_timeout": ping_timeout,
        "migrations_dir": migrations_dir,
    }
    if scheme == "sqlite":
        from .sqlite import SQLiteStorage

        return SQLiteStorage(url, **options)
    if scheme in ("postgresql", "postgres"):
        from .postgres import PostgresStorage

        return PostgresStorage(url, **options)
    msg = (
        f"unsupported storage URL {mask_password(url)!r}: "
        "expected sqlite:///path.db or postgresql://user@host:port/database"
    )
    raise ValueError(msg)
