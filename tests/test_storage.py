"""The storage contract, run against both engines, plus each engine's failure behaviour.

Failures of the network are staged with a small TCP proxy in front of the real PostgreSQL: it can
pause (a hung network: bytes stop flowing, nothing is closed) and drop every connection (a server
restart, as the client sees it).
"""

from __future__ import annotations

import re
import time
import urllib.parse

import pytest
import trio

import revivatech_actors.storage as storage_pkg
from revivatech_actors.storage import (
    Storage,
    StorageError,
    StorageMisconfigured,
    StorageUnavailable,
    open_storage,
)

from .tcp_proxy import TcpProxy

# ------------------------------------------------------------------------------------- helpers


def with_port(url: str, port: int) -> str:
    parts = urllib.parse.urlsplit(url)
    return urllib.parse.urlunsplit(parts._replace(netloc=f"{parts.username}@127.0.0.1:{port}"))


@pytest.fixture
async def proxied_postgres_url(postgres_url, nursery):
    proxy = TcpProxy("127.0.0.1", urllib.parse.urlsplit(postgres_url).port)
    await nursery.start(proxy.run)
    return proxy, with_port(postgres_url, proxy.port)


# Slow enough (about 1 s) that a ping can be issued while the writer is busy with it.
SLOW_MIGRATION = {
    "postgres": "SELECT pg_sleep(1.2);\nCREATE TABLE slow (x integer);",
    "sqlite": (
        "CREATE TABLE slow AS WITH RECURSIVE c(x) AS "
        "(SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 6000000) SELECT count(*) AS n FROM c;"
    ),
}


def engine_of(url: str) -> str:
    return "sqlite" if url.startswith("sqlite") else "postgres"


# ------------------------------------------------------------------------------ public surface


def test_public_api_is_pinned():
    assert sorted(storage_pkg.__all__) == sorted(
        [
            "DEFAULT_CONNECT_TIMEOUT",
            "DEFAULT_PING_TIMEOUT",
            "AppliedMigration",
            "BookingEvent",
            "DailyRevenue",
            "LeaseLost",
            "Migration",
            "MigrationError",
            "PartitionsMismatch",
            "ProfilesPage",
            "PurgeStep",
            "RejectedLetter",
            "QueryTimeout",
            "RealtimeSeed",
            "Storage",
            "StorageError",
            "StorageMisconfigured",
            "StorageUnavailable",
            "StoredJourney",
            "StoredPrediction",
            "VisitorCounts",
            "VisitorKeys",
            "open_storage",
        ]
    )
    assert issubclass(StorageUnavailable, StorageError)
    assert issubclass(storage_pkg.MigrationError, StorageError)


def test_open_storage_picks_the_engine_by_scheme(tmp_path):
    assert open_storage(f"sqlite:///{tmp_path}/a.db").engine == "sqlite"
    assert open_storage("sqlite:///:memory:").engine == "sqlite"
    assert open_storage("postgresql://u@localhost/db").engine == "postgresql"
    assert open_storage("postgres://u@localhost/db").engine == "postgresql"
    assert isinstance(open_storage("sqlite:///:memory:"), Storage)


def test_open_storage_refuses_unknown_or_malformed_urls():
    with pytest.raises(ValueError, match="unsupported storage URL 'mysql://u:\\*\\*\\*@h/db'"):
        open_storage("mysql://u:secret@h/db")
    with pytest.raises(ValueError, match="names no file"):
        open_storage("sqlite:///")
    with pytest.raises(ValueError, match="not a SQLite URL"):
        open_storage("sqlite://relative.db")
    with pytest.raises(ValueError, match="ping_timeout must be positive"):
        open_storage("sqlite:///:memory:", ping_timeout=0)


def test_url_for_display_masks_the_password():
    storage = open_storage("postgresql://app:s3cret@db.example:6432/analytics?sslmode=require")
    assert (
        storage.url_for_display == "postgresql://app:***@db.example:6432/analytics?sslmode=require"
    )
    storage = open_storage("postgresql://app@db.example/analytics?password=s3cret&sslmode=require")
    assert "s3cret" not in storage.url_for_display
    assert "password=***" in storage.url_for_display
    assert "s3cret" not in repr(storage)
    assert open_storage("sqlite:///:memory:").url_for_display == "sqlite:///:memory:"


# ------------------------------------------------------------------- contract (both engines)


async def test_open_ping_close_are_idempotent(storage_url):
    storage = open_storage(storage_url)
    assert not storage.is_open
    await storage.open()
    await storage.open()
    assert storage.is_open
    await storage.ping()
    await storage.ping()
    await storage.close()
    await storage.close()
    assert not storage.is_open


async def test_ping_before_open_and_after_close_raises_unavailable(storage_url):
    storage = open_storage(storage_url)
    with pytest.raises(StorageUnavailable, match="not open"):
        await storage.ping()
    await storage.open()
    await storage.close()
    with pytest.raises(StorageUnavailable, match="closed"):
        await storage.ping()
    with pytest.raises(StorageUnavailable, match="closed"):
        await storage.migrate()
    with pytest.raises(StorageUnavailable, match="closed"):
        await storage.table_names()


async def test_a_closed_storage_can_be_opened_again(storage_url):
    storage = open_storage(storage_url)
    async with storage:
        await storage.migrate()
    async with storage:
        await storage.ping()
        assert "analytics_events" in await storage.table_names()
        assert await storage.migrate() == []


async def test_table_names_lists_only_what_exists(storage_url):
    async with open_storage(storage_url) as storage:
        assert await storage.table_names() == set()
        await storage.migrate()
        names = await storage.table_names()
        assert {"analytics_events", "rejected_events", "schema_migrations"} <= names
        assert not any(name.startswith(("sqlite_", "pg_")) for name in names)


async def test_ping_is_not_blocked_by_a_busy_writer(storage_url, tmp_path):
    (tmp_path / "0001_slow.sql").write_text(SLOW_MIGRATION[engine_of(storage_url)])
    async with open_storage(storage_url, migrations_dir=tmp_path, ping_timeout=1.0) as storage:
        migrated = trio.Event()

        async def migrate():
            await storage.migrate()
            migrated.set()

        async with trio.open_nursery() as nursery:
            nursery.start_soon(migrate)
            await trio.sleep(0.25)
            started = time.monotonic()
            await storage.ping()
            elapsed = time.monotonic() - started
            assert not migrated.is_set(), "the slow migration finished before the ping: no overlap"
        assert elapsed < 0.3
        assert "slow" in await storage.table_names()


# ------------------------------------------------------------------------------------- SQLite


async def test_sqlite_creates_the_file_in_an_existing_folder(tmp_path):
    path = tmp_path / "analytics.db"
    async with open_storage(f"sqlite:///{path}") as storage:
        assert storage.path == path
        await storage.migrate()
    assert path.is_file()
    assert path.stat().st_size > 0


async def test_sqlite_never_makes_a_missing_folder_and_names_it(tmp_path):
    path = tmp_path / "nested" / "deeper" / "analytics.db"
    storage = open_storage(f"sqlite:///{path}")
    with pytest.raises(
        StorageMisconfigured, match=rf"^the folder {re.escape(str(path.parent))} does not exist "
    ):
        await storage.open()
    assert not storage.is_open
    assert not (tmp_path / "nested").exists()


async def test_sqlite_relative_url_is_relative_to_the_working_directory(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "data").mkdir()
    async with open_storage("sqlite:///data/rel.db") as storage:
        await storage.ping()
        assert storage.path == tmp_path / "data" / "rel.db"
    assert (tmp_path / "data" / "rel.db").is_file()


async def test_sqlite_url_given_by_the_fixture_is_created_where_it_says(sqlite_url):
    path = sqlite_url.removeprefix("sqlite:///")
    async with open_storage(sqlite_url) as storage:
        await storage.migrate()
    assert trio.Path(path).name == "revivatech-test.db"
    assert await trio.Path(path).is_file()


async def test_sqlite_unopenable_file_is_unavailable_with_the_path(tmp_path):
    blocker = tmp_path / "x.db"
    blocker.mkdir()  # a folder where the file should be
    storage = open_storage(f"sqlite:///{blocker}")
    with pytest.raises(StorageUnavailable, match=r"cannot connect to SQLite database .*/x\.db"):
        await storage.open()
    assert not storage.is_open


# ----------------------------------------------------------------------------------- PostgreSQL


async def test_postgres_unreachable_fails_fast_naming_host_and_port(closed_port_url):
    port = urllib.parse.urlsplit(closed_port_url).port
    storage = open_storage(closed_port_url, connect_timeout=2.0)
    started = time.monotonic()
    with pytest.raises(StorageUnavailable) as caught:
        await storage.open()
    assert time.monotonic() - started < 2.0 + 1.0
    message = str(caught.value)
    assert f"127.0.0.1:{port}" in message
    assert "\n" not in message
    assert not storage.is_open
    with pytest.raises(StorageUnavailable, match="not open"):
        await storage.ping()


async def test_postgres_silent_host_fails_within_connect_timeout(nursery):
    """A host that accepts TCP but never answers: libpq alone would wait 2 s or more."""

    async def silent(stream):
        async with stream:
            await trio.sleep_forever()

    listeners = await nursery.start(trio.serve_tcp, silent, 0)
    port = listeners[0].socket.getsockname()[1]
    storage = open_storage(f"postgresql://postgres@127.0.0.1:{port}/postgres", connect_timeout=0.5)
    started = time.monotonic()
    with pytest.raises(
        StorageUnavailable, match=rf"127\.0\.0\.1:{port}: no connection within 0\.5 s"
    ):
        await storage.open()
    assert time.monotonic() - started < 0.5 + 1.0


async def test_postgres_wrong_database_is_unavailable_with_the_server_message(postgres_url):
    url = postgres_url.rsplit("/", 1)[0] + "/no_such_database_here"
    with pytest.raises(StorageUnavailable, match="no_such_database_here"):
        await open_storage(url).open()


async def test_postgres_ping_timeout_is_respected_on_a_hung_network(proxied_postgres_url):
    proxy, url = proxied_postgres_url
    async with open_storage(url, ping_timeout=0.3) as storage:
        await storage.ping()
        proxy.pause()
        for _ in range(2):  # the second ping opens a new connection, which hangs too
            started = time.monotonic()
            with pytest.raises(StorageUnavailable, match=r"no answer to ping within 0\.3 s"):
                await storage.ping()
            assert 0.25 < time.monotonic() - started < 0.3 + 0.5
        proxy.resume()
        await storage.ping()  # a fresh health connection, not one stuck behind the old thread


async def test_postgres_lost_connections_are_reopened_on_the_next_call(proxied_postgres_url):
    proxy, url = proxied_postgres_url
    async with open_storage(url) as storage:
        await storage.ping()
        assert proxy.connections_proxied == 2  # writer + health
        proxy.drop_all()
        await trio.sleep(0.05)
        with pytest.raises(StorageUnavailable):
            await storage.ping()
        await storage.ping()
        with pytest.raises(StorageUnavailable):
            await storage.applied_migrations()  # the writer finds out on its next call...
        assert await storage.applied_migrations() == []  # ...and reconnects on the one after
        assert len(await storage.migrate()) >= 1
        assert proxy.connections_proxied == 4


async def test_postgres_concurrent_migrations_apply_each_file_exactly_once(postgres_url, tmp_path):
    for version in (1, 2, 3):
        (tmp_path / f"000{version}_step.sql").write_text(
            f"SELECT pg_sleep(0.2);\nCREATE TABLE step_{version} (x integer);"
        )
    storages = [open_storage(postgres_url, migrations_dir=tmp_path) for _ in range(3)]
    results: list[list] = []

    async def migrate(storage):
        async with storage:
            results.append(await storage.migrate())

    async with trio.open_nursery() as nursery:
        for storage in storages:
            nursery.start_soon(migrate, storage)

    assert sorted(m.version for result in results for m in result) == [1, 2, 3]
    async with open_storage(postgres_url, migrations_dir=tmp_path) as storage:
        assert [m.version for m in await storage.applied_migrations()] == [1, 2, 3]
        assert {"step_1", "step_2", "step_3"} <= await storage.table_names()
