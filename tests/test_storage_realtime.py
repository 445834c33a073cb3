"""``Storage.realtime_seed``: the stored events of the realtime window, per bucket, on both engines.
Checked against a window fed the same events one by one."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from revivatech_actors.domain.realtime import RealtimeWindow, bucket_of
from revivatech_actors.storage import open_storage

from .helpers import make_event

PAGES = frozenset({"page_view"})
CONVERSIONS = frozenset({"booking_completed", "quote_accepted"})


@pytest.fixture
async def storage(storage_url):
    async with open_storage(storage_url) as storage:
        await storage.migrate()
        yield storage


def new_window() -> RealtimeWindow:
    return RealtimeWindow(300, page_types=PAGES, conversion_types=CONVERSIONS)


async def test_the_seed_rebuilds_the_window_the_events_made(storage):
    now = datetime.now(UTC)
    spec = [  # seconds ago, visitor, session, type, page
        (5, "u1", "s1", "page_view", "/home"),
        (7, "u1", "s1", "page_view", "/prices"),
        (65, "u1", "s2", "booking_completed", "/book"),
        (66, "u2", "s3", "page_view", "/home"),
        (200, "u3", "s4", "quote_accepted", None),
        (250, "u3", "s4", "page_view", None),  # a page view without a page: counted, not listed
        (299, "u4", "s5", "page_view", "/old"),
        (400, "gone", "s9", "page_view", "/home"),  # older than the window: not in the seed
    ]
    events = [
        make_event(
            n,
            user_fingerprint=user,
            session_id=session,
            event_type=event_type,
            page_url=page,
            timestamp=now - timedelta(seconds=ago),
            received_at=now,
        )
        for n, (ago, user, session, event_type, page) in enumerate(spec)
    ]
    await storage.write_batch(events)

    live, seeded = new_window(), new_window()
    since = datetime.fromtimestamp(live.start(now.timestamp()), UTC)
    assert now - timedelta(seconds=310) < since <= now - timedelta(seconds=300)
    seed = await storage.realtime_seed(since, page_types=PAGES, conversion_types=CONVERSIONS)
    assert "gone" not in seed.users and "s9" not in seed.sessions
    assert seed.users["u1"] == bucket_of(
        (now - timedelta(seconds=5)).timestamp()
    )  # its newest event
    assert sum(events for _, events, _, _ in seed.bucket_counts) == 7
    assert sum(conversions for *_, conversions in seed.bucket_counts) == 2

    for e in events:
        live.add_event(
            e.user_fingerprint,
            e.session_id,
            e.event_type,
            e.page_url,
            e.timestamp.timestamp(),
            now.timestamp(),
        )
    seeded.restore(
        seed.bucket_counts, seed.page_views, seed.users, seed.sessions, now=now.timestamp()
    )
    expected = live.figures(now.timestamp())
    assert seeded.figures(now.timestamp()) == expected
    assert (
        expected.active_users,
        expected.active_sessions,
        expected.events,
        expected.page_views,
        expected.conversions,
    ) == (4, 5, 7, 5, 2)
    assert expected.top_pages == (("/home", 2), ("/old", 1), ("/prices", 1))


async def test_an_empty_window_seeds_nothing(storage):
    now = datetime.now(UTC)
    await storage.write_batch([make_event(0, timestamp=now - timedelta(hours=1))])
    seed = await storage.realtime_seed(
        now - timedelta(seconds=300), page_types=PAGES, conversion_types=CONVERSIONS
    )
    assert (seed.bucket_counts, seed.page_views, seed.users, seed.sessions) == ([], [], {}, {})
