"""The realtime window in the real Redis (``shared_state.realtime``): the same figures as the
in-process window for the same events, request figures, one seeding instance, and pub/sub."""

from __future__ import annotations

import time
from datetime import UTC, datetime

import pytest
import trio

from revivatech_actors.domain.realtime import RealtimeWindow, bucket_of
from revivatech_actors.shared_state.realtime import RedisRealtime
from revivatech_actors.shared_state.redis import RedisConnection
from revivatech_actors.storage import RealtimeSeed

from .helpers import make_event

PAGES = frozenset({"page_view"})
CONVERSIONS = frozenset({"booking_completed"})


@pytest.fixture
def shared(redis_url, redis_prefix):
    connection = RedisConnection(redis_url)
    yield RedisRealtime(
        connection,
        redis_url,
        redis_prefix,
        window=60,
        page_types=PAGES,
        conversion_types=CONVERSIONS,
    )
    connection.close()


def stored_event(user: str, session: str, event_type: str, page: str | None, at: float):
    return make_event(
        0,
        user_fingerprint=user,
        session_id=session,
        event_type=event_type,
        page_url=page,
        timestamp=datetime.fromtimestamp(at, UTC),
    )


def local() -> RealtimeWindow:
    return RealtimeWindow(60, page_types=PAGES, conversion_types=CONVERSIONS)


async def test_the_shared_window_reports_what_the_local_one_does(shared):
    now = time.time()
    events = [
        (
            f"u{n % 40}",
            f"s{n % 55}",
            "booking_completed" if n % 10 == 0 else "page_view",
            f"/p{n % 7}" if n % 3 else None,
            now - (n % 50),
        )
        for n in range(300)
    ]
    events.append(("old", "s-old", "page_view", "/old", now - 3600))  # out of the window
    window = local()
    for user, session, kind, page, at in events:
        window.add_event(user, session, kind, page, at, now)
    stored = [stored_event(*fields) for fields in events]
    await shared.add_events(stored[:150], now)
    await shared.add_events(stored[150:], now)  # two instances, or two batches: added up
    expected, got = window.figures(now), await shared.figures(now)
    assert (got.events, got.page_views, got.conversions, got.top_pages) == (
        expected.events,
        expected.page_views,
        expected.conversions,
        expected.top_pages,
    )
    assert got.events_per_bucket == expected.events_per_bucket  # the sparkline's series
    assert sum(got.events_per_bucket) == got.events
    # HyperLogLog estimates; at these sizes Redis's are exact or within a visitor or two
    assert abs(got.active_users - expected.active_users) <= 1 and expected.active_users == 40
    assert (
        abs(got.active_sessions - expected.active_sessions) <= 1 and expected.active_sessions == 55
    )


async def test_requests_add_up_across_calls(shared):
    now = time.time()
    await shared.add_requests({bucket_of(now): (3, 0.030, 1)})
    await shared.add_requests({bucket_of(now): (1, 0.010, 0)})
    got = await shared.figures(now)
    assert (
        got.requests == 4 and got.avg_response_ms == pytest.approx(10.0) and got.error_rate == 0.25
    )


async def test_one_instance_seeds_an_empty_window_and_only_once(shared):
    now = time.time()
    assert await shared.claim_seed(now) is True
    assert await shared.claim_seed(now) is False  # the lock: another instance starting now
    b = bucket_of(now)
    await shared.restore(
        RealtimeSeed([(b, 5, 3, 1)], [(b, "/a", 3)], {"u1": b, "u2": b - 1}, {"s1": b}), now
    )
    got = await shared.figures(now)
    assert (got.events, got.page_views, got.conversions, got.active_users, got.top_pages) == (
        5,
        3,
        1,
        2,
        (("/a", 3),),
    )


async def test_changes_and_insights_reach_listeners_but_not_their_own_changes(
    shared, redis_url, redis_prefix
):
    connection = RedisConnection(redis_url)
    other = RedisRealtime(  # another instance on the same Redis
        connection,
        redis_url,
        redis_prefix,
        window=60,
        page_types=PAGES,
        conversion_types=CONVERSIONS,
    )
    changes, insights = [], []
    try:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(shared.listen, lambda: changes.append(1), insights.append)
            await trio.sleep(0.3)  # subscribed
            now = time.time()
            await shared.add_events([stored_event("u", "s", "page_view", "/", now)], now)
            await shared.publish_insights(["fp-1"])
            with trio.fail_after(3):
                while not insights:
                    await trio.sleep(0.02)
            assert changes == []  # its own change: its metrics actor tells it, not pub/sub
            await other.add_events([stored_event("u", "s", "page_view", "/", now)], now)
            with trio.fail_after(3):
                while not changes:
                    await trio.sleep(0.02)
            nursery.cancel_scope.cancel()
    finally:
        connection.close()
    assert insights == ["fp-1"]
