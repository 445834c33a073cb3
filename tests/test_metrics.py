"""The metrics actor: rebuilt from stored events at start, counts what the batcher hands over,
HTTP timings, uptime, and change notification. Real storage (both engines), a fake clock."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import pytest
import trio

from revivatech_actors.actors.metrics import MetricsActor
from revivatech_actors.messages import StoredBatch
from revivatech_actors.storage import open_storage

from .helpers import make_event

NOW = datetime.now(UTC).replace(microsecond=0)


@pytest.fixture
async def storage(storage_url):
    async with open_storage(storage_url) as storage:
        await storage.migrate()
        yield storage


class Clock:
    def __init__(self, at: datetime) -> None:
        self.now = at.timestamp()

    def __call__(self) -> float:
        return self.now


def actor(storage, inbox, clock, **fields) -> MetricsActor:
    return MetricsActor(
        storage,
        inbox,
        300,
        frozenset({"page_view"}),
        frozenset({"booking_completed"}),
        clock=clock,
        started_at=clock.now,
        **fields,
    )


def visit(
    n: int, user: str, event_type: str = "page_view", ago: float = 0.0, page: str | None = "/home"
):
    return make_event(
        n,
        user_fingerprint=user,
        session_id=f"{user}-s",
        event_type=event_type,
        page_url=page,
        timestamp=NOW - timedelta(seconds=ago),
        received_at=NOW,
    )


async def test_starts_from_the_stored_window_then_counts_what_the_batcher_hands_over(storage):
    await storage.write_batch(
        [
            visit(0, "u1", ago=30),
            visit(1, "u2", "booking_completed", ago=200),
            visit(2, "old", ago=3600),
        ]
    )
    send, receive = trio.open_memory_channel(4)
    clock = Clock(NOW)
    metrics = actor(storage, receive, clock)
    async with trio.open_nursery() as nursery:
        await nursery.start(metrics.run)
        f = (await metrics.figures())[0]
        assert (f.active_users, f.events, f.page_views, f.conversions) == (2, 2, 1, 1)

        seen = metrics.version
        await send.send(StoredBatch([visit(3, "u3"), visit(4, "u1", page="/prices")], None))
        with trio.fail_after(2):
            assert await metrics.wait_for_change(seen) == seen + 1
        f = (await metrics.figures())[0]
        assert (f.active_users, f.active_sessions, f.events, f.page_views) == (3, 3, 4, 3)
        assert f.top_pages == (("/home", 2), ("/prices", 1))

        clock.now += 400  # everything leaves the window
        f = (await metrics.figures())[0]
        assert (f.active_users, f.events, f.top_pages) == (0, 0, ())
        await send.aclose()  # the batcher stopped: the actor ends
    assert metrics.activity.handled == 2


async def test_http_timings_and_uptime(storage):
    _, receive = trio.open_memory_channel(1)
    clock = Clock(NOW)
    ready = [False]

    async def is_ready() -> bool:
        return ready[0]

    metrics = actor(storage, receive, clock, is_ready=is_ready)
    metrics.record_request(0.004, 200)
    metrics.record_request(0.012, 500)
    f = (await metrics.figures())[0]
    assert (f.requests, f.avg_response_ms, f.error_rate) == (2, pytest.approx(8.0), 0.5)
    metrics.uptime.observe(False, clock.now)
    ready[0] = True
    clock.now += 10
    metrics.uptime.observe(True, clock.now)
    clock.now += 10
    assert await metrics.uptime_percent() == pytest.approx(100 * 15 / 20)  # observed again: ready


async def test_a_storage_that_cannot_be_read_leaves_the_window_empty_not_the_actor_down(
    closed_port_url,
):
    storage = open_storage(closed_port_url, connect_timeout=0.5)
    send, receive = trio.open_memory_channel(1)
    metrics = actor(storage, receive, Clock(NOW))
    async with trio.open_nursery() as nursery:
        with trio.fail_after(10):
            await nursery.start(metrics.run)
        await send.send(StoredBatch([visit(0, "u1")], None))
        with trio.fail_after(2):
            await metrics.wait_for_change(0)
        assert (await metrics.figures())[0].active_users == 1
        await send.aclose()


async def test_redis_away_and_back_figures_fall_back_to_this_instance_then_are_shared_again(
    storage, redis_url, redis_prefix, monkeypatch
):
    """Through a TCP proxy that cuts Redis: the figures come from the local window meanwhile
    (``source`` says so), nothing raises, and once Redis is back (after the retry pause) events
    are counted in the shared window again, without a restart."""
    from revivatech_actors.actors import metrics as metrics_module
    from revivatech_actors.shared_state.realtime import RedisRealtime
    from revivatech_actors.shared_state.redis import RedisConnection

    from .tcp_proxy import TcpProxy

    monkeypatch.setattr(metrics_module, "REDIS_RETRY_AFTER", 0.5)
    send, receive = trio.open_memory_channel(4)
    async with trio.open_nursery() as nursery:
        proxy = TcpProxy("127.0.0.1", 6379)
        port = await nursery.start(proxy.run)
        url = f"redis://127.0.0.1:{port}/0"
        connection = RedisConnection(url, timeout=0.5)
        shared = RedisRealtime(
            connection,
            url,
            redis_prefix,
            window=300,
            page_types=frozenset({"page_view"}),
            conversion_types=frozenset({"booking_completed"}),
        )
        metrics = actor(storage, receive, Clock(NOW), shared=shared)
        metrics.clock = time.time
        await nursery.start(metrics.run)

        async def counted(n_events: int) -> None:
            seen = metrics.version
            # timed now, not NOW (the module's import): the shared window is on the real clock,
            # and a long test run takes NOW out of its 300 s
            moved = (datetime.now(UTC) - NOW).total_seconds()
            await send.send(
                StoredBatch([visit(n, f"v{n}", ago=-moved) for n in range(n_events)], None)
            )
            with trio.fail_after(5):
                await metrics.wait_for_change(seen)

        async def figures_become(expected: tuple[str, int]) -> None:
            # the shared window is written after the local one changes: under load, a moment later
            seen = None
            with trio.move_on_after(5):
                while seen != expected:
                    figures, source = await metrics.figures()
                    seen = (source, figures.events)
                    await trio.sleep(0.05)
            assert seen == expected

        await counted(2)
        await figures_become(("redis", 2))

        proxy.switch_off()
        await counted(3)  # counted locally only: the shared window misses them
        await figures_become(("local", 5))

        await proxy.switch_on()
        await trio.sleep(0.6)  # the retry pause
        await counted(1)
        await figures_become(("redis", 3))  # 2 before, 1 after the outage
        nursery.cancel_scope.cancel()
    connection.close()
