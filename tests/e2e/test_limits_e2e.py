"""Rate limits and write keys through real ``serve`` processes: a badly written rate stops
``serve`` with exit code 2; two instances, and two ``--workers``, on one Redis enforce one
combined rate per client; hashed admin tokens and write keys work as configured."""

from __future__ import annotations

import hashlib

import httpx
import pytest

from .conftest import ADMIN_TOKEN, run_cli, service_env

pytestmark = pytest.mark.e2e

EVENTS = "/api/analytics/events"
RATE = 40  # per hour: what refills while a test runs (~0.1 token) does not blur the count
WRITE_KEY = "e2e-site-write-key-0123456789"


def sha(text: str) -> str:
    return "sha256:" + hashlib.sha256(text.encode()).hexdigest()


def shared_env(postgres_url: str, redis_url: str, prefix: str, **settings: str) -> dict[str, str]:
    return service_env(
        REVIVATECH_STORAGE_URL=postgres_url,
        REVIVATECH_REDIS_URL=redis_url,
        REVIVATECH_REDIS_KEY_PREFIX=prefix,
        REVIVATECH_LIMITS_INGEST_RATE=f"{RATE}/1h",
        **settings,
    )


def post_events(urls: list[str], count: int, **headers: str) -> list[int]:
    """``count`` events, each on a fresh connection, round robin over ``urls``: their statuses."""
    statuses = []
    # no keep-alive: the kernel picks a worker per connection
    with httpx.Client(timeout=5, limits=httpx.Limits(max_keepalive_connections=0)) as client:
        for n in range(count):
            body = {
                "user_fingerprint": f"fp-{n}",
                "session_id": f"s-{n}",
                "event_type": "page_view",
            }
            statuses.append(
                client.post(urls[n % len(urls)] + EVENTS, json=body, headers=headers).status_code
            )
    return statuses


def assert_combined_rate(statuses: list[int], processes: int) -> None:
    """About RATE allowed in all: each process may hold back (or spend late) one lease."""
    chunk = max(1, RATE // 20)
    allowed = statuses.count(200)
    assert set(statuses) <= {200, 429}, statuses
    assert RATE - processes * chunk <= allowed <= RATE + processes * chunk, statuses


@pytest.mark.parametrize("rate", ["600/1x", "600", "0/1m", "1.5/1m"])
def test_a_badly_written_rate_stops_serve_with_exit_code_2(tmp_path, rate):
    result = run_cli("serve", cwd=tmp_path, REVIVATECH_LIMITS_ADMIN_RATE=rate)
    assert result.returncode == 2, result.stderr
    assert "limits.admin_rate" in result.stderr and repr(rate) in result.stderr
    assert "N/<int>(s|m|h)" in result.stderr or "count of a rate" in result.stderr


def test_two_instances_on_one_redis_enforce_one_rate_per_client(
    serve, postgres_url, redis_url, redis_prefix
):
    env = shared_env(
        postgres_url,
        redis_url,
        redis_prefix,
        REVIVATECH_AUTH_ADMIN_TOKENS=sha(ADMIN_TOKEN),
        REVIVATECH_LIMITS_ADMIN_RATE="4/1m",
    )
    a, b = serve(env=env), serve(env=env)
    assert_combined_rate(post_events([a.base_url, b.base_url], 2 * RATE), 2)

    # the admin rate is one credential's across the instances too; the hashed token is accepted
    auth = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
    statuses = [
        httpx.get(server.base_url + "/api/analytics/realtime", headers=auth, timeout=5).status_code
        for server in (a, b, a, b, a, b, a, b)
    ]
    assert statuses == [200] * 4 + [429] * 4, statuses  # a chunk of 1 token: exact


def test_workers_on_one_redis_enforce_one_rate_per_client(
    serve, postgres_url, redis_url, redis_prefix
):
    server = serve(env=shared_env(postgres_url, redis_url, redis_prefix), args=("--workers", "2"))
    assert_combined_rate(post_events([server.base_url], 2 * RATE), 2)


def test_write_keys_configured_as_hashes_open_ingest_to_their_holders_only(serve, sqlite_url):
    server = serve(
        env=service_env(
            REVIVATECH_STORAGE_URL=sqlite_url, REVIVATECH_AUTH_WRITE_KEYS=sha(WRITE_KEY)
        )
    )
    assert post_events([server.base_url], 2, **{"X-Write-Key": WRITE_KEY}) == [200, 200]
    refused = httpx.post(
        server.base_url + EVENTS,
        json={"user_fingerprint": "f", "session_id": "s", "event_type": "page_view"},
        timeout=5,
    )
    assert refused.status_code == 401 and refused.json()["error"] == "missing_write_key"
    assert post_events([server.base_url], 1, **{"X-Write-Key": sha(WRITE_KEY)}) == [401]
