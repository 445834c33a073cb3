"""``serve --workers N``: real worker processes on one port (SO_REUSEPORT), on PostgreSQL and
Redis. Both workers answer, every event is stored, one generated token opens both, SIGTERM stops
them all with exit code 0; a killed worker is replaced, workers outlive no parent; and the
refusals (SQLite, no Redis, a port already taken) come before anything starts."""

from __future__ import annotations

import os
import signal
import socket
import time

import httpx
import pytest

from ..helpers import process_alive, query
from .conftest import ADMIN_TOKEN, generated_token, run_cli, service_env

pytestmark = pytest.mark.e2e

AUTH = {"Authorization": f"Bearer {ADMIN_TOKEN}"}


def workers(serve, postgres_url: str, redis_url: str, prefix: str, count: int = 2, **env: str):
    settings = {
        "REVIVATECH_STORAGE_URL": postgres_url,
        "REVIVATECH_REDIS_URL": redis_url,
        "REVIVATECH_REDIS_KEY_PREFIX": prefix,
        **env,
    }
    return serve(env=service_env(**settings), args=("--workers", str(count)))


def answering(
    server, path: str = "/api/analytics/health", headers=None, *, until, timeout: float = 15.0
) -> dict:
    """GET ``path`` over a fresh connection each time (the kernel picks a worker per connection)
    until ``until(answers)`` holds; returns the last answer per pid."""
    answers: dict[int, dict] = {}
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            body = httpx.get(server.base_url + path, headers=headers, timeout=5).json()
        except httpx.TransportError:  # a worker stopping or starting
            continue
        answers[body["pid"]] = body
        if until(answers):
            return answers
    pytest.fail(f"no such answers within {timeout} s: {sorted(answers)}\n{server.output()}")


def worker_pids(server, *, without: set[int] = frozenset()) -> dict[int, int]:
    """Worker index -> pid, once both workers answered (pids in ``without`` are not counted)."""
    answers = answering(
        server,
        until=lambda seen: len({b["worker"] for p, b in seen.items() if p not in without}) == 2,
    )
    return {body["worker"]: pid for pid, body in answers.items() if pid not in without}


def test_two_workers_share_the_port_and_the_events_under_one_token(
    serve, postgres_url, redis_url, redis_prefix
):
    server = workers(serve, postgres_url, redis_url, redis_prefix)
    token = generated_token(server)
    pids = worker_pids(server)
    assert sorted(pids) == [1, 2] and len(set(pids.values())) == 2
    assert server.process.pid not in pids.values()  # the parent serves nothing itself

    sent = 60
    for n in range(sent):  # httpx.post opens a new connection for each event
        event = {"user_fingerprint": f"fp-{n}", "session_id": f"s-{n}", "event_type": "page_view"}
        assert (
            httpx.post(server.base_url + "/api/analytics/events", json=event, timeout=5).status_code
            == 200
        )
    assert query(postgres_url, "SELECT count(*) FROM analytics_events") == [
        (sent,)
    ]  # durable: stored before 200

    # the generated token opens both workers, and each ingested a share of the events
    trees = answering(
        server,
        "/api/analytics/actors",
        {"Authorization": f"Bearer {token}"},
        until=lambda seen: set(seen) == set(pids.values()),
    )
    ingested = {
        pid: next(c["handled"] for c in tree["data"]["children"] if c["name"] == "ingest")
        for pid, tree in trees.items()
    }
    assert sum(ingested.values()) == sent and all(ingested.values()), ingested
    assert token not in server.output()  # written to a file by the parent, never logged
    assert server.output().count("revivatech-admin-token-") == 1  # one token for every worker

    server.signal(signal.SIGTERM)
    assert server.wait_exit() == 0
    assert not any(process_alive(pid) for pid in pids.values())
    output = server.output()
    assert output.count("service: stopped cleanly") == 2
    assert "every worker stopped; exit code 0" in output


def test_a_killed_worker_is_replaced(serve, postgres_url, redis_url, redis_prefix):
    server = workers(
        serve, postgres_url, redis_url, redis_prefix, REVIVATECH_AUTH_ADMIN_TOKENS=ADMIN_TOKEN
    )
    pids = worker_pids(server)
    os.kill(pids[1], signal.SIGKILL)
    replaced = worker_pids(server, without={pids[1]})
    assert replaced[1] != pids[1] and replaced[2] == pids[2]
    assert (
        f"worker 1 (pid {pids[1]}) was killed by SIGKILL; starting another in 0.5 s"
        in server.output()
    )
    event = {"user_fingerprint": "fp", "session_id": "s", "event_type": "page_view"}
    for _ in range(10):
        assert (
            httpx.post(server.base_url + "/api/analytics/events", json=event, timeout=5).status_code
            == 200
        )
    server.signal(signal.SIGTERM)
    assert server.wait_exit() == 0
    assert not any(process_alive(pid) for pid in replaced.values())


def test_workers_stop_when_their_parent_dies(serve, postgres_url, redis_url, redis_prefix):
    server = workers(
        serve, postgres_url, redis_url, redis_prefix, REVIVATECH_AUTH_ADMIN_TOKENS=ADMIN_TOKEN
    )
    pids = worker_pids(server)
    server.process.kill()  # SIGKILL: the parent cannot forward anything
    server.process.wait(5)
    deadline = time.monotonic() + 10
    while any(process_alive(pid) for pid in pids.values()) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not any(process_alive(pid) for pid in pids.values()), server.output()
    assert server.output().count("the parent process is gone: stopping as on SIGTERM") == 2
    with socket.socket() as probe, pytest.raises(ConnectionRefusedError):
        probe.connect(("127.0.0.1", server.port))


def test_one_worker_is_the_serve_process_itself(serve):
    server = serve(
        env=service_env(REVIVATECH_AUTH_ADMIN_TOKENS=ADMIN_TOKEN), args=("--workers", "1")
    )
    health = httpx.get(server.base_url + "/api/analytics/health").json()
    assert (health["pid"], health["worker"], health["storageEngine"]) == (
        server.process.pid,
        None,
        "sqlite",
    )
    tree = httpx.get(server.base_url + "/api/analytics/actors", headers=AUTH).json()
    assert (tree["pid"], tree["worker"]) == (server.process.pid, None)
    assert "revivatech_actors.workers" not in server.output()


@pytest.mark.parametrize(
    ("env", "named"),
    [
        ({}, "needs PostgreSQL storage (storage.url"),
        (
            {"REVIVATECH_STORAGE_URL": "postgresql://postgres@127.0.0.1:5432/postgres"},
            "needs redis.url",
        ),
        (
            {"REVIVATECH_REDIS_URL": "redis://127.0.0.1:6379/0"},
            "needs PostgreSQL storage (storage.url",
        ),
    ],
)
def test_several_workers_are_refused_without_postgresql_or_redis(tmp_path, env, named):
    result = run_cli("serve", "--workers", "2", cwd=tmp_path, **env)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert (
        len(lines) == 1 and "configuration error: web.workers: more than 1 " + named in lines[0]
    ), result.stderr
    assert not (tmp_path / "revivatech.db").exists()
    result = run_cli("serve", cwd=tmp_path, REVIVATECH_WEB_WORKERS="0", **env)
    assert result.returncode == 2 and "web.workers: must be an integer >= 1, got 0" in result.stderr


def test_several_workers_are_refused_a_port_something_listens_on(tmp_path, postgres_url, redis_url):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = run_cli(
            "serve",
            "--workers",
            "2",
            "--port",
            str(port),
            cwd=tmp_path,
            REVIVATECH_STORAGE_URL=postgres_url,
            REVIVATECH_REDIS_URL=redis_url,
        )
    assert result.returncode == 1
    assert result.stderr.strip() == (
        f"revivatech-actors: error: cannot listen on 127.0.0.1:{port}: address already "
        "in use (is another serve running? set --port or REVIVATECH_WEB_PORT)"
    )
