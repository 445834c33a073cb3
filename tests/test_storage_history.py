"""Stored history for backtests, on both engines: the bounds, every event in time order (up to a
time, ties by event id), and the backtests' reports (the newest, the oldest forgotten)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from revivatech_actors.domain.backtest import HistoryEvent
from revivatech_actors.storage import open_storage
from revivatech_actors.storage._interface.history import EVALUATIONS_KEPT

from .helpers import make_event, query

T0 = datetime(2026, 9, 1, 12, tzinfo=UTC)


@pytest.fixture
async def storage(storage_url):
    async with open_storage(storage_url) as storage:
        await storage.migrate()
        yield storage


async def test_no_history_has_no_bounds_and_no_events(storage):
    assert await storage.history_bounds() is None
    assert await storage.history_events(T0, lambda *_: pytest.fail("no event")) == 0


async def test_events_come_in_time_order_up_to_the_end_ties_by_event_id(storage):
    spec = [  # visitor, session, type, hours after T0, value
        ("b", "b1", "page_view", 5, None),
        ("a", "a1", "page_view", 3, None),
        ("a", "a2", "booking_completed", 1, 49.5),
        ("c", "c1", "page_view", 100, None),  # after the scan's end
        ("b", "b1", "pricing_viewed", 2, None),
        ("a", "a1", "page_view", 2, None),  # the same time as b's: after it by event id
    ]
    events = [
        make_event(
            n,
            event_id=f"00000000-0000-4000-8000-{n:012d}",  # ties go by it
            user_fingerprint=user,
            session_id=session,
            event_type=kind,
            timestamp=T0 + timedelta(hours=hours),
            value=value,
        )
        for n, (user, session, kind, hours, value) in enumerate(spec)
    ]
    await storage.commit_batch(events)
    assert await storage.history_bounds() == (T0 + timedelta(hours=1), T0 + timedelta(hours=100))
    seen: list[tuple[str, HistoryEvent]] = []
    count = await storage.history_events(
        T0 + timedelta(hours=5), lambda fp, event: seen.append((fp, event))
    )
    assert count == 5
    assert seen == [
        ("a", HistoryEvent("booking_completed", "a2", T0 + timedelta(hours=1), 49.5)),
        ("b", HistoryEvent("pricing_viewed", "b1", T0 + timedelta(hours=2), None)),
        ("a", HistoryEvent("page_view", "a1", T0 + timedelta(hours=2), None)),
        ("a", HistoryEvent("page_view", "a1", T0 + timedelta(hours=3), None)),
        ("b", HistoryEvent("page_view", "b1", T0 + timedelta(hours=5), None)),  # its end, in
    ]


async def test_the_newest_report_is_served_and_only_the_newest_are_kept(storage, storage_url):
    assert await storage.latest_evaluation() is None
    for n in range(EVALUATIONS_KEPT + 3):
        await storage.record_evaluation(T0 + timedelta(hours=n), {"n": n, "models": {}})
    at, report = await storage.latest_evaluation()
    assert at == T0 + timedelta(hours=EVALUATIONS_KEPT + 2) and report["n"] == EVALUATIONS_KEPT + 2
    assert query(storage_url, "SELECT count(*) FROM model_evaluations") == [(EVALUATIONS_KEPT,)]
