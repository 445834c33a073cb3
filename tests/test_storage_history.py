"""Stored history for backtests, on both engines: the bounds, every visitor's events together and
in time order (up to a time), and the backtests' reports (the newest, the oldest forgotten)."""

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


async def test_no_history_has_no_bounds_and_no_visitors(storage):
    assert await storage.history_bounds() is None
    assert await storage.visitor_histories(T0, lambda *_: pytest.fail("no visitor")) == 0


async def test_each_visitor_s_events_come_together_in_time_order(storage):
    spec = [  # visitor, session, type, hours after T0, value
        ("b", "b1", "page_view", 5, None),
        ("a", "a1", "page_view", 3, None),
        ("a", "a2", "booking_completed", 1, 49.5),
        ("c", "c1", "page_view", 100, None),  # after the scan's end
        ("b", "b1", "pricing_viewed", 2, None),
        ("a", "a1", "page_view", 2, None),
    ]
    events = [
        make_event(
            n,
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
    seen: list[tuple[str, list[HistoryEvent]]] = []
    count = await storage.visitor_histories(
        T0 + timedelta(hours=5), lambda fp, got: seen.append((fp, got))
    )
    assert count == 2
    assert seen == [
        (
            "a",
            [
                HistoryEvent("booking_completed", "a2", T0 + timedelta(hours=1), 49.5),
                HistoryEvent("page_view", "a1", T0 + timedelta(hours=2), None),
                HistoryEvent("page_view", "a1", T0 + timedelta(hours=3), None),
            ],
        ),
        (
            "b",
            [
                HistoryEvent("pricing_viewed", "b1", T0 + timedelta(hours=2), None),
                HistoryEvent("page_view", "b1", T0 + timedelta(hours=5), None),  # its end, in
            ],
        ),
    ]


async def test_the_newest_report_is_served_and_only_the_newest_are_kept(storage, storage_url):
    assert await storage.latest_evaluation() is None
    for n in range(EVALUATIONS_KEPT + 3):
        await storage.record_evaluation(T0 + timedelta(hours=n), {"n": n, "models": {}})
    at, report = await storage.latest_evaluation()
    assert at == T0 + timedelta(hours=EVALUATIONS_KEPT + 2) and report["n"] == EVALUATIONS_KEPT + 2
    assert query(storage_url, "SELECT count(*) FROM model_evaluations") == [(EVALUATIONS_KEPT,)]
