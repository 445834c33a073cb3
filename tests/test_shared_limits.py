"""The shared limiter against the real Redis: tokens leased in chunks (no Redis call per request,
one call for many concurrent requests of a client), the combined rate of several processes
within one lease each, refusals answered from memory, and Redis away (a closed port)."""

from __future__ import annotations

import trio

from revivatech_actors.domain.rates import lease_chunk, parse_rate
from revivatech_actors.shared_state.limits import LocalLimiter, SharedLimiter
from revivatech_actors.shared_state.redis import RedisConnection

from .conftest import free_port


class CountingConnection(RedisConnection):
    """The real connection, counting the calls that reach Redis."""

    calls = 0

    async def call(self, fn):
        self.calls += 1
        return await super().call(fn)


def limiter(rate: str, url: str, prefix: str) -> tuple[SharedLimiter, CountingConnection]:
    parsed = parse_rate(rate)
    connection = CountingConnection(url, timeout=1.0)
    return SharedLimiter(
        parsed, connection, prefix, fallback=LocalLimiter(parsed), timeout=1.0
    ), connection


async def test_a_process_asks_redis_once_per_chunk(redis_url, redis_prefix):
    shared, connection = limiter(
        "1200/1h", redis_url, redis_prefix
    )  # per hour: no refill to speak of
    chunk = lease_chunk(shared.rate)
    decisions = [await shared.take("203.0.113.7") for _ in range(3 * chunk)]
    assert all(d.allowed for d in decisions) and connection.calls == 3
    assert (
        decisions[0].limit == 1200
        and decisions[0].remaining == 1199
        and decisions[-1].remaining == 1200 - 3 * chunk
    )
    connection.close()


async def test_concurrent_requests_of_a_client_share_one_call(redis_url, redis_prefix):
    shared, connection = limiter("1000/1h", redis_url, redis_prefix)
    results = []

    async def take() -> None:
        results.append((await shared.take("203.0.113.8")).allowed)

    async with trio.open_nursery() as nursery:
        for _ in range(lease_chunk(shared.rate)):
            nursery.start_soon(take)
    assert results == [True] * lease_chunk(shared.rate) and connection.calls == 1
    connection.close()


async def test_two_processes_hold_a_client_to_the_combined_rate_and_refusals_cost_no_call(
    redis_url, redis_prefix
):
    (a, calls_a), (b, calls_b) = (
        limiter("100/1h", redis_url, redis_prefix),
        limiter("100/1h", redis_url, redis_prefix),
    )
    chunk = lease_chunk(a.rate)
    allowed = 0
    for n in range(300):
        allowed += (await (a if n % 2 else b).take("198.51.100.4")).allowed
    assert 100 - 2 * chunk <= allowed <= 100
    assert (
        calls_a.calls + calls_b.calls <= 100 // chunk + 4
    )  # refused from memory until a token is due
    refused = await a.take("198.51.100.4")
    assert not refused.allowed and refused.retry_after > 0 and refused.remaining == 0
    assert (await a.take("198.51.100.5")).allowed  # another client
    calls_a.close()
    calls_b.close()


async def test_with_redis_unreachable_the_process_limits_alone_and_asks_again_later():
    shared, connection = limiter("3/1h", f"redis://127.0.0.1:{free_port()}/0", "rvt-test:closed:")
    decisions = [await shared.take("k") for _ in range(5)]
    assert [d.allowed for d in decisions] == [True, True, True, False, False]
    assert connection.calls == 1  # then in-process until the retry pause ends
    connection.close()
