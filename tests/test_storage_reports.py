"""The admin reports' reads (``profiles_page``, ``top_profiles``, ``visitor_counts``,
``revenue_by_day``, ``booking_events``): one contract, run on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import date, timedelta

import pytest

from revivatech_actors.domain.profiles import delta_from_events
from revivatech_actors.domain.scoring import ENGAGEMENT, Score, ScoreRecord
from revivatech_actors.storage import BookingEvent, DailyRevenue, VisitorCounts, open_storage

from .helpers import BASE_TIME, make_event

T = BASE_TIME  # 2026-11-01T12:00Z
DONE, STARTED = "booking_completed", "booking_started"


@pytest.fixture
async def storage(storage_url):
    async with open_storage(storage_url) as storage:
        await storage.migrate()
        yield storage


async def visit(storage, fp: str, *offsets_hours: float, kind: str = "page_view", **fields) -> None:
    """Store ``fp``'s events at T + each offset (hours) and apply them to its profile."""
    events = [
        make_event(
            n,
            user_fingerprint=fp,
            session_id=f"{fp}-s",
            event_type=kind,
            timestamp=T + timedelta(hours=h),
            **fields,
        )
        for n, h in enumerate(offsets_hours)
    ]
    await storage.write_batch(events)
    await storage.apply_profile_deltas([delta_from_events(fp, events)])


async def engagement(storage, fp: str, value: float) -> None:
    await storage.record_scores(
        [ScoreRecord(fp, T, "engaged", (Score(ENGAGEMENT, value, 0.5, ()),))]
    )


async def test_profiles_page_newest_activity_first_with_the_total(storage):
    await visit(storage, "a", 0)
    await visit(storage, "b", 5)
    await visit(storage, "c", 2, 3)
    await visit(storage, "d", 5)  # same last_seen as b: by fingerprint
    page = await storage.profiles_page(0, 3)
    assert page.total == 4
    assert [p.user_fingerprint for p in page.profiles] == ["b", "d", "c"]
    assert page.profiles[2].total_events == 2 and page.profiles[2].last_seen == T + timedelta(
        hours=3
    )
    assert page.profiles[2].total_session_seconds == pytest.approx(3600.0, abs=0.01)
    rest = await storage.profiles_page(3, 3)
    assert (rest.total, [p.user_fingerprint for p in rest.profiles]) == (4, ["a"])
    assert (await storage.profiles_page(10, 3)).profiles == []


async def test_profiles_page_of_an_empty_database(storage):
    page = await storage.profiles_page(0, 50)
    assert (page.total, page.profiles) == (0, [])


async def test_top_profiles_by_recorded_engagement_among_the_recent(storage):
    await visit(storage, "old", -48)
    await engagement(storage, "old", 99.0)  # most engaged, but not seen since
    for fp, score in (("low", 10.0), ("high", 80.0), ("mid", 40.0)):
        await visit(storage, fp, 1)
        await engagement(storage, fp, score)
    await visit(storage, "unscored", 2)
    top = await storage.top_profiles(T - timedelta(hours=1), 10)
    assert [p.user_fingerprint for p in top] == ["high", "mid", "low", "unscored"]
    assert top[0].scores[ENGAGEMENT] == 80.0
    assert [p.user_fingerprint for p in await storage.top_profiles(T - timedelta(hours=1), 2)] == [
        "high",
        "mid",
    ]
    assert await storage.top_profiles(T + timedelta(hours=3), 10) == []


async def test_visitor_counts_new_and_active(storage):
    await visit(storage, "returning", -72, 1)  # first seen before, active since
    await visit(storage, "new", 1)
    await visit(storage, "gone", -72)
    assert await storage.visitor_counts(T) == VisitorCounts(active=2, new=1)
    assert await storage.visitor_counts(T - timedelta(days=10)) == VisitorCounts(active=3, new=3)
    assert await storage.visitor_counts(T + timedelta(days=1)) == VisitorCounts(active=0, new=0)


async def test_revenue_by_day_sums_values_per_utc_day_in_the_range(storage):
    events = [
        make_event(0, event_type=DONE, value=100.0, timestamp=T),  # 2026-11-01
        make_event(
            1, event_type=DONE, value=50.5, timestamp=T + timedelta(hours=11, minutes=59)
        ),  # 23:59 same day
        make_event(
            2, event_type=DONE, value=None, timestamp=T + timedelta(hours=12)
        ),  # 11-02 00:00, no value
        make_event(
            3, event_type=DONE, value=20.0, timestamp=T + timedelta(days=3)
        ),  # at until: left out
        make_event(4, event_type=STARTED, value=999.0, timestamp=T),  # another type
        make_event(
            5, event_type=DONE, value=7.0, timestamp=T - timedelta(seconds=1)
        ),  # before since
    ]
    await storage.write_batch(events)
    days = await storage.revenue_by_day(T, T + timedelta(days=3), [DONE])
    assert days == [
        DailyRevenue(date(2026, 11, 1), 150.5, 2),
        DailyRevenue(date(2026, 11, 2), 0.0, 1),
    ]
    assert await storage.revenue_by_day(T, T + timedelta(days=3), []) == []


async def test_booking_events_in_time_order_keeping_the_latest_past_the_limit(storage):
    events = [
        make_event(
            n,
            user_fingerprint=f"v{n % 2}",
            event_type=(STARTED, DONE)[n % 2],
            value=float(n),
            timestamp=T + timedelta(minutes=n),
        )
        for n in range(6)
    ]
    events.append(make_event(9, event_type="page_view", timestamp=T))
    await storage.write_batch(events)
    found = await storage.booking_events(T, T + timedelta(hours=1), [STARTED, DONE], 100)
    assert found == [
        BookingEvent(f"v{n % 2}", (STARTED, DONE)[n % 2], T + timedelta(minutes=n), float(n))
        for n in range(6)
    ]
    latest = await storage.booking_events(T, T + timedelta(hours=1), [STARTED, DONE], 2)
    assert [e.at for e in latest] == [T + timedelta(minutes=4), T + timedelta(minutes=5)]
    assert await storage.booking_events(
        T + timedelta(minutes=1), T + timedelta(minutes=2), [STARTED, DONE], 100
    ) == [found[1]]
