"""Profile deltas in storage (``apply_profile_deltas``, ``load_profiles``): one contract, both engines."""

from __future__ import annotations

import uuid
from datetime import timedelta

import attrs

import pytest

from revivatech_actors.domain.profiles import delta_from_events
from revivatech_actors.storage import open_storage

from .helpers import BASE_TIME, make_event


@pytest.fixture
async def storage(storage_url):
    async with open_storage(storage_url) as storage:
        await storage.migrate()
        yield storage


def visitor_events():
    """Visitor v: 2 sessions over 2 days, a booking started and completed (149.5)."""
    day2 = timedelta(days=1)
    return [
        make_event(0, user_fingerprint="v", session_id="v-s1", event_type="page_view"),
        make_event(60, user_fingerprint="v", session_id="v-s1", event_type="service_viewed"),
        make_event(120, user_fingerprint="v", session_id="v-s1", event_type="booking_started"),
        make_event(0, user_fingerprint="v", session_id="v-s2", event_type="page_view", timestamp=BASE_TIME + day2),
        make_event(0, user_fingerprint="v", session_id="v-s2", event_type="booking_completed", value=149.5,
                   timestamp=BASE_TIME + day2 + timedelta(minutes=5)),
    ]


async def test_a_first_event_counts_one_session(storage):
    event = make_event(0, user_fingerprint="first", session_id="first-s1")
    await storage.write_batch([event])
    rollups = await storage.apply_profile_deltas([delta_from_events("first", [event])])
    assert rollups["first"].total_sessions == 1  # the original service said 0 here
    (profile,) = (await storage.load_profiles(["first"])).values()
    assert (profile.total_events, profile.total_sessions, profile.total_page_views, profile.days_active) == (1, 1, 1, 1)
    assert profile.first_seen == profile.last_seen == event.timestamp


async def test_profile_figures_are_exact(storage):
    events = visitor_events()
    await storage.write_batch(events)
    rollups = await storage.apply_profile_deltas([delta_from_events("v", events)])
    assert rollups["v"].total_sessions == 2 and rollups["v"].days_active == 2
    profile = (await storage.load_profiles(["v", "nobody"]))["v"]
    assert profile.total_session_seconds == pytest.approx(120 + 300)  # summed from the sessions
    assert (profile.total_events, profile.total_page_views, profile.bookings_started, profile.total_bookings) == (5, 2, 1, 1)
    assert profile.total_value == pytest.approx(149.5)
    assert profile.event_counts == {"page_view": 2, "service_viewed": 1, "booking_started": 1, "booking_completed": 1}
    assert profile.first_seen == events[0].timestamp and profile.last_seen == events[-1].timestamp
    assert profile.last_booking_at == events[-1].timestamp


async def test_deltas_are_commutative(storage):
    """The same events for two visitors, their halves applied in opposite orders (as two writers
    might), give the same profile."""
    results = []
    for visitor, order in (("a", (0, 1)), ("b", (1, 0))):
        events = [
            attrs.evolve(e, event_id=str(uuid.uuid4()), user_fingerprint=visitor, session_id=f"{visitor}-{e.session_id}")
            for e in visitor_events()
        ]
        halves = (events[:2], events[2:])
        for index in order:
            await storage.write_batch(halves[index])
            await storage.apply_profile_deltas([delta_from_events(visitor, halves[index])])
        results.append(attrs.evolve((await storage.load_profiles([visitor]))[visitor], user_fingerprint="*"))
    assert results[0] == results[1]
    assert (results[0].total_events, results[0].days_active, results[0].total_sessions) == (5, 2, 2)


async def test_a_day_or_session_seen_again_is_not_counted_again(storage):
    events = visitor_events()
    await storage.write_batch(events)
    await storage.apply_profile_deltas([delta_from_events("v", events)])
    later = make_event(500, user_fingerprint="v", session_id="v-s1", event_type="page_view")
    await storage.write_batch([later])
    again = await storage.apply_profile_deltas([delta_from_events("v", [later])])
    assert (again["v"].total_sessions, again["v"].days_active) == (2, 2)
    profile = (await storage.load_profiles(["v"]))["v"]
    assert profile.total_events == 6
    assert profile.event_counts == {"page_view": 3, "service_viewed": 1, "booking_started": 1, "booking_completed": 1}
