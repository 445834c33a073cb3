"""Shared fixtures: real PostgreSQL and real Redis, each test on its own database / key prefix.

On a laptop without the services, tests that need them skip with the reason. Under ``CI=true``
a missing service is an error instead: CI must never pass by skipping the real thing.
"""

from __future__ import annotations

import os
import socket
import uuid

import pytest

POSTGRES_ADMIN_URL = os.environ.get("REVIVATECH_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
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


@pytest.fixture
def new_database():
    """Makes fresh, empty PostgreSQL databases, all dropped after the test: ``new_database()`` -> URL."""
    import psycopg

    try:
        admin = psycopg.connect(POSTGRES_ADMIN_URL, autocommit=True, connect_timeout=3)
    except psycopg.OperationalError as exc:
        _unavailable("PostgreSQL", str(exc).strip().splitlines()[0])
    names = []

    def make() -> str:
        name = f"rvt_test_{uuid.uuid4().hex[:12]}"
        admin.execute(f'CREATE DATABASE "{name}"')
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
