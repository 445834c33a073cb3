"""The admin reports' maths (domain/reports.py): pure, no I/O, no event loop."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest

from revivatech_actors.domain.funnel import ParameterError
from revivatech_actors.domain.profiles import ProfileState
from revivatech_actors.domain.reports import (
    BookingFigures,
    booking_figures,
    customers_document,
    insights_page_document,
    month_start,
    parse_page,
    performance_document,
    revenue_document,
    revenue_range,
    top_user_row,
    visitor_row,
)
from revivatech_actors.domain.scoring import CHURN, ENGAGEMENT, LEAD
from revivatech_actors.storage import BookingEvent, DailyRevenue, ProfilesPage, VisitorCounts

NOW = datetime(2026, 3, 15, 12, 0, tzinfo=UTC)
S, C = "booking_started", "booking_completed"


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        ({}, (1, 50)),
        ({"page": "3", "limit": "20"}, (3, 20)),
        ({"limit": "100"}, (1, 100)),
        ({"page": "100000"}, (100000, 50)),
    ],
)
def test_pages(args, expected):
    assert parse_page(args) == expected


@pytest.mark.parametrize(
    ("args", "parameter"),
    [
        ({"page": "0"}, "page"),
        ({"page": "-1"}, "page"),
        ({"page": "1.5"}, "page"),
        ({"page": ""}, "page"),
        ({"page": "100001"}, "page"),
        ({"limit": "0"}, "limit"),
        ({"limit": "101"}, "limit"),
        ({"limit": "ten"}, "limit"),
        ({"limit": "٣"}, "limit"),
        ({"page": " 1"}, "page"),
        ({"offset": "5"}, "offset"),
    ],
)
def test_bad_pages_name_the_parameter(args, parameter):
    with pytest.raises(ParameterError) as caught:
        parse_page(args)
    assert caught.value.parameter == parameter


def state(fp="v", **changes) -> ProfileState:
    values = dict(
        total_events=9,
        total_sessions=3,
        total_page_views=6,
        total_bookings=1,
        total_value=120.456,
        total_session_seconds=300.0,
        first_seen=NOW - timedelta(days=2),
        last_seen=NOW,
        segment="engaged",
        scores={ENGAGEMENT: 55.5, LEAD: 12.0, CHURN: 3.0},
    )
    values.update(changes)
    return ProfileState(fp, **values)


def test_visitor_rows_and_the_page_document():
    doc = insights_page_document(
        2, 2, ProfilesPage(5, [state("a"), state("b", scores={}, total_sessions=0)])
    )
    assert (doc["totalCount"], doc["currentPage"], doc["totalPages"], doc["limit"]) == (5, 2, 3, 2)
    a, b = doc["insights"]
    assert a == {
        "fingerprint": "a",
        "totalSessions": 3,
        "totalPageviews": 6,
        "totalPageViews": 6,
        "totalEvents": 9,
        "totalBookings": 1,
        "totalValue": 120.46,
        "avgSessionDuration": 100.0,
        "conversionRate": 0.3333,
        "engagementScore": 55.5,
        "leadScore": 12.0,
        "churnScore": 3.0,
        "segment": "engaged",
        "firstSeen": "2026-03-13T12:00:00.000Z",
        "lastSeen": "2026-03-15T12:00:00.000Z",
    }
    assert (b["engagementScore"], b["avgSessionDuration"], b["conversionRate"]) == (None, 0.0, 0.0)
    assert insights_page_document(1, 50, ProfilesPage(0, []))["totalPages"] == 0
    assert visitor_row(state()) == a | {"fingerprint": "v"}


def test_top_user_rows_use_the_originals_names():
    assert top_user_row(state()) == {
        "user_fingerprint": "v",
        "engagement_score": 55.5,
        "lead_score": 12.0,
        "total_bookings": 1,
        "total_booking_value": 120.46,
        "last_seen_at": "2026-03-15T12:00:00.000Z",
        "segment": "engaged",
    }


def test_month_starts():
    assert month_start(NOW) == datetime(2026, 3, 1, tzinfo=UTC)
    assert month_start(NOW, 3) == datetime(2025, 12, 1, tzinfo=UTC)
    assert month_start(NOW, -10) == datetime(2027, 1, 1, tzinfo=UTC)
    assert revenue_range(NOW) == (
        datetime(2026, 1, 1, tzinfo=UTC),
        datetime(2026, 4, 1, tzinfo=UTC),
    )
    jan = datetime(2026, 1, 10, tzinfo=UTC)
    assert revenue_range(jan)[0] == datetime(
        2025, 12, 1, tzinfo=UTC
    )  # the previous month is last year


def test_revenue_of_this_month_last_month_and_the_year():
    days = [
        DailyRevenue(date(2026, 1, 5), 10.0, 1),
        DailyRevenue(date(2026, 2, 10), 100.0, 2),
        DailyRevenue(date(2026, 2, 20), 100.0, 1),
        DailyRevenue(date(2026, 3, 1), 150.0, 2),
        DailyRevenue(date(2026, 3, 15), 100.004, 1),
        DailyRevenue(date(2026, 3, 31), 50.0, 1),
    ]
    doc = revenue_document(days, NOW)
    assert doc["currentMonth"] == {
        "total": 300.0,
        "orders": 4,
        "growth": 50.0,
        "from": "2026-03-01T00:00:00.000Z",
        "target": None,
        "completion": None,
    }
    assert doc["previousMonth"] == {"total": 200.0, "orders": 3}
    assert doc["thisYear"] == {"total": 510.0, "orders": 8, "target": None, "completion": None}
    assert [d["date"] for d in doc["daily"]] == [
        "2026-02-20",
        "2026-03-01",
        "2026-03-15",
    ]  # last 30 days to today
    assert doc["summary"] == {
        "totalRevenue": 510.0,
        "totalOrders": 8,
        "averageOrderValue": 63.75,
        "monthlyGrowth": 50.0,
        "period": "thisYear",
    }
    assert doc["topCategories"] is None


def test_revenue_growth_is_none_without_a_previous_month():
    doc = revenue_document([DailyRevenue(date(2026, 3, 2), 80.0, 1)], NOW)
    assert (doc["currentMonth"]["total"], doc["currentMonth"]["growth"]) == (80.0, None)
    empty = revenue_document([], NOW)
    assert (
        empty["currentMonth"]["total"],
        empty["summary"]["averageOrderValue"],
        empty["daily"],
    ) == (0, None, [])


def ev(fp, kind, minutes):
    return BookingEvent(fp, kind, NOW + timedelta(minutes=minutes), None)


def figures(events, since=NOW, window=3600.0):
    return booking_figures(
        events,
        since=since,
        window=window,
        started_types=frozenset({S}),
        completed_types=frozenset({C}),
    )


def test_booking_times_pair_each_completion_with_the_latest_start():
    events = [
        ev("a", S, 0),
        ev("a", C, 30),  # 30 min
        ev("b", S, 0),
        ev("b", S, 10),
        ev("b", C, 70),  # the later start: 60 min
        ev("c", S, 0),
        ev("c", C, 120),  # past the one-hour window: completed, not timed
        ev("d", C, 5),  # no start
        ev("e", S, -20),
        ev("e", C, 10),  # started before the period: timed, not converted
        ev("f", S, 40),  # open
    ]
    got = figures(events)
    assert got == BookingFigures(
        started=5, completed=5, converted=2, durations=(1800.0, 3600.0, 1800.0)
    )
    doc = performance_document(
        got, timeframe="30 days", since=NOW, now=NOW + timedelta(days=1), truncated=False
    )
    assert doc["performance"] == {
        "averageTimeHours": 0.67,
        "medianTimeHours": 0.5,
        "efficiency": 40.0,
        "timedBookings": 3,
    }
    assert doc["bookings"] == {
        "started": 5,
        "completed": 5,
        "open": 3,
        "inProgress": None,
        "pending": None,
    }
    assert doc["period"] == {
        "timeframe": "30 days",
        "from": "2026-03-15T12:00:00.000Z",
        "to": "2026-03-16T12:00:00.000Z",
    }


def test_completions_before_the_period_close_their_start_but_do_not_count():
    got = figures([ev("a", S, -30), ev("a", C, -20), ev("a", C, 10)])
    assert got == BookingFigures(started=0, completed=1, converted=0, durations=())
    doc = performance_document(got, timeframe="1 hour", since=NOW, now=NOW, truncated=True)
    assert (
        doc["performance"]["averageTimeHours"] is None and doc["performance"]["efficiency"] is None
    )
    assert doc["truncated"] is True


def test_customers_new_and_returning():
    doc = customers_document(
        VisitorCounts(active=10, new=4), timeframe="30 days", since=NOW, now=NOW
    )
    assert doc["customers"] == {"total": 10, "new": 4, "returning": 6}
