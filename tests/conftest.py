"""Shared fixtures: real PostgreSQL and real Redis, each test on its own database / key prefix.

On a laptop without the services, tests that need them skip with the reason. Under ``CI=true``
a missing service is an error instead: CI must never pass by skipping the real thing.
"""

from __future__ import annotations

import os
import queue
import socket
import threading
import uuid

import pytest

POSTGRES_ADMIN_URL = os.environ.get(
    "REVIVATECH_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)
REDIS_TEST_URL = os.environ.get("REVIVATECH_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
IN_CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}


def _unavailable(what: str, why: str) -> None:
    message = f"{what} is not reachable ({why})"
    if IN_CI:
        pytest.fail(f"{message}; under CI=true this is a failure, not a skip", pytrace=False)
    pytest.skip(message)


def _port_open(host: str, port: int) -> str | None:
    try:
        with socket.create_connection((host, port), timeout=1.0):
            return None
    except OSError as exc:
        return str(exc)


class _DatabasePool:
    """Empty databases made ahead by a thread. ``CREATE DATABASE`` takes ~0.3 s of disk writes
    on this machine; made ahead, that time overlaps the tests' own work instead of adding to it
    (hundreds of tests take a database each)."""

    AHEAD = 3

    def __init__(self, admin_url: str) -> None:
        self._admin_url = admin_url
        self._ready: queue.Queue[str] = queue.Queue(maxsize=self.AHEAD)
        self._stop = threading.Event()
        self._failure: BaseException | None = None
        self._thread = threading.Thread(target=self._fill, name="test-database-pool", daemon=True)
        self._thread.start()

    def _fill(self) -> None:
        import psycopg

        try:
            with psycopg.connect(self._admin_url, autocommit=True, connect_timeout=3) as admin:
                while not self._stop.is_set():
                    name = f"rvt_test_{uuid.uuid4().hex[:12]}"
                    admin.execute(f'CREATE DATABASE "{name}"')
                    while True:
                        try:
                            self._ready.put(name, timeout=0.2)
                            break
                        except queue.Full:
                            if self._stop.is_set():
                                admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
                                return
        except BaseException as exc:  # handed to the test that waits for a database
            self._failure = exc

    def take(self) -> str:
        while True:
            try:
                return self._ready.get(timeout=1.0)
            except queue.Empty:
                if not self._thread.is_alive():
                    raise RuntimeError(
                        f"no test database could be made: {self._failure}"
                    ) from self._failure

    def close(self, admin) -> None:
        """Stop making databases and drop those made but not taken."""
        self._stop.set()
        self._thread.join(timeout=10)
        while True:
            try:
                name = self._ready.get_nowait()
            except queue.Empty:
                return
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="session")
def _database_pool():
    pools: list[_DatabasePool] = []  # made at the first test that needs PostgreSQL

    def pool() -> _DatabasePool:
        if not pools:
            pools.append(_DatabasePool(POSTGRES_ADMIN_URL))
        return pools[0]

    yield pool
    if pools:
        import psycopg

        with psycopg.connect(POSTGRES_ADMIN_URL, autocommit=True, connect_timeout=3) as admin:
            pools[0].close(admin)


@pytest.fixture
def new_database(_database_pool):
    """Makes fresh, empty PostgreSQL databases, all dropped after the test: ``new_database()``
    -> URL."""
    import psycopg

    try:
        admin = psycopg.connect(POSTGRES_ADMIN_URL, autocommit=True, connect_timeout=3)
    except psycopg.OperationalError as exc:
        _unavailable("PostgreSQL", str(exc).strip().splitlines()[0])
    names = []

    def make() -> str:
        name = _database_pool().take()
        names.append(name)
        return POSTGRES_ADMIN_URL.rsplit("/", 1)[0] + "/" + name

    with admin:
        try:
            yield make
        finally:
            for name in names:
                admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def postgres_url(new_database):
    """A fresh, empty PostgreSQL database for one test, dropped afterwards."""
    return new_database()


@pytest.fixture
def sqlite_url(tmp_path):
    """A SQLite database file in the test's own temporary folder."""
    return f"sqlite:///{tmp_path / 'revivatech-test.db'}"


@pytest.fixture(params=["sqlite", "postgres"])
def storage_url(request):
    """Each engine in turn: the shared contract suite runs against both."""
    return request.getfixturevalue(f"{request.param}_url")


@pytest.fixture
def redis_url():
    """The real Redis; the test gets a unique key prefix through ``redis_prefix`` and cleans up."""
    error = _port_open("127.0.0.1", 6379)
    if error is not None:
        _unavailable("Redis", error)
    return REDIS_TEST_URL


@pytest.fixture
def redis_prefix(redis_url):
    import redis

    prefix = f"rvt-test:{uuid.uuid4().hex[:12]}:"
    yield prefix
    client = redis.Redis.from_url(redis_url)
    keys = list(client.scan_iter(match=prefix + "*"))
    if keys:
        client.delete(*keys)
    client.close()


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def closed_port_url():
    """A PostgreSQL URL on a port where nothing listens: for unreachable-database cases."""
    return f"postgresql://postgres@127.0.0.1:{free_port()}/postgres"
