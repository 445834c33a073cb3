"""The admin pages' reports (``GET /api/analytics/dashboard``, ``/revenue``, ``/performance``,
``/customers``, ``/insights``) from what storage reads of the events and profiles. Pure: no I/O.

Events say what visitors did on the site, not what the workshop did: revenue is the value of
``booking_completed`` events, booking times run from a visitor's ``booking_started`` to their
next ``booking_completed``, customers are visitors. A figure only the business's own records
know (repairs in progress, targets, categories) is None, and docs/api.md says why.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, date, datetime, timedelta
from statistics import fmean, median
from typing import TYPE_CHECKING, Any

import attrs

from .funnel import ParameterError
from .scoring import CHURN, ENGAGEMENT, LEAD
from .timefmt import iso_datetime

if TYPE_CHECKING:
    from ..storage import BookingEvent, DailyRevenue, ProfilesPage, VisitorCounts
    from .profiles import ProfileState

__all__ = [
    "BookingFigures",
    "booking_figures",
    "customers_document",
    "insights_page_document",
    "month_start",
    "parse_page",
    "performance_document",
    "revenue_document",
    "whole_number_within",
    "revenue_range",
    "top_user_row",
    "visitor_row",
]

#: Visitors per page of ``GET /insights`` when the request says nothing (as the original's client
#: asks).
DEFAULT_PAGE_LIMIT = 50
#: Most visitors per page.
MAX_PAGE_LIMIT = 100
#: Highest page number: beyond it the offset alone would make the database walk millions of rows.
MAX_PAGE = 100_000
#: Days of daily revenue listed (as the original listed).
DAILY_DAYS = 30


def whole_number_within(raw: str, low: int, high: int) -> bool:
    """Whether ``raw`` is a whole number of ASCII digits from ``low`` to ``high`` (``"²"`` and
    other Unicode digits are not, nor a string too long to be one, which ``int`` would refuse
    with an error past 4300 digits)."""
    return (
        raw.isascii()
        and raw.isdigit()
        and len(raw.lstrip("0")) <= len(str(high))
        and low <= int(raw) <= high
    )


def _whole_number(args: Mapping[str, str], name: str, default: int, low: int, high: int) -> int:
    raw = args.get(name)
    if raw is None:
        return default
    if not whole_number_within(raw, low, high):
        shown = raw if len(raw) <= 20 else raw[:20] + "..."
        raise ParameterError(name, f"must be a whole number from {low} to {high}, got {shown!r}")
    return int(raw)


def parse_page(args: Mapping[str, str]) -> tuple[int, int]:
    """``page`` (from 1) and ``limit`` of ``GET /insights``: strict whole numbers, nothing else
    accepted; raises ParameterError naming the first bad parameter."""
    unknown = sorted(set(args) - {"page", "limit"})
    if unknown:
        raise ParameterError(unknown[0], "unknown parameter; the visitor list takes page and limit")
    return (
        _whole_number(args, "page", 1, 1, MAX_PAGE),
        _whole_number(args, "limit", DEFAULT_PAGE_LIMIT, 1, MAX_PAGE_LIMIT),
    )


def _time(moment: datetime | None) -> str | None:
    return None if moment is None else iso_datetime(moment)


def visitor_row(state: ProfileState) -> dict[str, Any]:
    """One visitor of ``GET /insights`` (the original client's ``CustomerInsight``): counts, the
    scores last recorded (None before the scorer first saw the visitor) and times."""
    sessions = max(state.total_sessions, 0)
    return {
        "fingerprint": state.user_fingerprint,
        "totalSessions": sessions,
        "totalPageviews": state.total_page_views,  # the original client's spelling
        "totalPageViews": state.total_page_views,
        "totalEvents": state.total_events,
        "totalBookings": state.total_bookings,
        "totalValue": round(state.total_value, 2),
        "avgSessionDuration": round(state.total_session_seconds / sessions, 1) if sessions else 0.0,
        "conversionRate": round(state.total_bookings / sessions, 4) if sessions else 0.0,
        "engagementScore": state.scores.get(ENGAGEMENT),
        "leadScore": state.scores.get(LEAD),
        "churnScore": state.scores.get(CHURN),
        "segment": state.segment,
        "firstSeen": _time(state.first_seen),
        "lastSeen": _time(state.last_seen),
    }


def insights_page_document(page: int, limit: int, found: ProfilesPage) -> dict[str, Any]:
    """``data`` of ``GET /insights``: the page's visitors and where it sits among all."""
    return {
        "insights": [visitor_row(p) for p in found.profiles],
        "totalCount": found.total,
        "currentPage": page,
        "totalPages": -(-found.total // limit),
        "limit": limit,
    }


def top_user_row(state: ProfileState) -> dict[str, Any]:
    """One of the dashboard's ``topUsers``, in the original's column names."""
    return {
        "user_fingerprint": state.user_fingerprint,
        "engagement_score": state.scores.get(ENGAGEMENT),
        "lead_score": state.scores.get(LEAD),
        "total_bookings": state.total_bookings,
        "total_booking_value": round(state.total_value, 2),
        "last_seen_at": _time(state.last_seen),
        "segment": state.segment,
    }


# --- revenue -------------------------------------------------------------------------------------


def month_start(moment: datetime, months_back: int = 0) -> datetime:
    """Midnight UTC of the first day of ``moment``'s month, ``months_back`` months earlier."""
    utc = moment.astimezone(UTC)
    index = utc.year * 12 + utc.month - 1 - months_back
    return datetime(index // 12, index % 12 + 1, 1, tzinfo=UTC)


def revenue_range(now: datetime) -> tuple[datetime, datetime]:
    """The range ``revenue_document`` needs: from the earliest of the previous month, this year
    and the daily days, to the end of this month (a client clock a little ahead still counts)."""
    utc = now.astimezone(UTC)
    daily = datetime.combine(utc.date() - timedelta(days=DAILY_DAYS - 1), datetime.min.time(), UTC)
    year = datetime(utc.year, 1, 1, tzinfo=UTC)
    return min(month_start(now, 1), year, daily), month_start(now, -1)


def _sum(days: Sequence[DailyRevenue], start: date, end: date) -> tuple[float, int]:
    chosen = [d for d in days if start <= d.day < end]
    return round(sum(d.revenue for d in chosen), 2), sum(d.orders for d in chosen)


def _growth(current: float, previous: float) -> float | None:
    """Percent change; None when there is nothing to compare with (the original said 0)."""
    return round((current - previous) / previous * 100, 2) if previous > 0 else None


def revenue_document(days: Sequence[DailyRevenue], now: datetime) -> dict[str, Any]:
    """``data`` of ``GET /revenue`` from the completed bookings per UTC day of ``revenue_range``."""
    this_month, last_month, next_month = (
        month_start(now).date(),
        month_start(now, 1).date(),
        month_start(now, -1).date(),
    )
    today = now.astimezone(UTC).date()
    year = date(today.year, 1, 1)
    current, current_orders = _sum(days, this_month, next_month)
    previous, previous_orders = _sum(days, last_month, this_month)
    yearly, yearly_orders = _sum(days, year, next_month)
    growth = _growth(current, previous)
    first_daily = today - timedelta(days=DAILY_DAYS - 1)
    return {
        "currentMonth": {
            "total": current,
            "orders": current_orders,
            "growth": growth,
            "from": iso_datetime(month_start(now)),
            "target": None,
            "completion": None,
        },
        "previousMonth": {"total": previous, "orders": previous_orders},
        "thisYear": {"total": yearly, "orders": yearly_orders, "target": None, "completion": None},
        "daily": [
            {"date": d.day.isoformat(), "revenue": round(d.revenue, 2), "orders": d.orders}
            for d in days
            if first_daily <= d.day <= today
        ],
        "topCategories": None,
        "summary": {
            "totalRevenue": yearly,
            "totalOrders": yearly_orders,
            "averageOrderValue": round(yearly / yearly_orders, 2) if yearly_orders else None,
            "monthlyGrowth": growth,
            "period": "thisYear",
        },
    }


# --- performance ---------------------------------------------------------------------------------


@attrs.frozen
class BookingFigures:
    """Bookings of a period: started, completed, started and completed within the window
    (converted), and the seconds from start to completion of each completion paired with a start."""

    started: int
    completed: int
    converted: int
    durations: tuple[float, ...]


def booking_figures(
    events: Sequence[BookingEvent],
    *,
    since: datetime,
    window: float,
    started_types: frozenset[str],
    completed_types: frozenset[str],
) -> BookingFigures:
    """Pair each visitor's completion with their latest booking start before it, at most
    ``window`` seconds earlier (events in time order; starts before ``since`` may pair with
    completions after it). Counts cover events at or after ``since``; a start is converted when
    a completion pairs with it. A start replaced by a later one before any completion is open."""
    open_starts: dict[str, datetime] = {}
    started = completed = converted = 0
    durations = []
    for event in events:
        fp = event.user_fingerprint
        if event.event_type in started_types:
            open_starts[fp] = event.at
            started += event.at >= since
        elif event.event_type in completed_types:
            start = open_starts.pop(fp, None)
            if event.at < since:
                continue
            completed += 1
            if start is not None and (event.at - start).total_seconds() <= window:
                durations.append((event.at - start).total_seconds())
                converted += start >= since
    return BookingFigures(started, completed, converted, tuple(durations))


def _period(timeframe: str, since: datetime, now: datetime) -> dict[str, Any]:
    return {"timeframe": timeframe, "from": iso_datetime(since), "to": iso_datetime(now)}


def performance_document(
    figures: BookingFigures, *, timeframe: str, since: datetime, now: datetime, truncated: bool
) -> dict[str, Any]:
    """``data`` of ``GET /performance``: booking start → completion times and the share of
    started bookings completed; what only the workshop knows is None."""
    hours = [seconds / 3600 for seconds in figures.durations]
    return {
        "performance": {
            "averageTimeHours": round(fmean(hours), 2) if hours else None,
            "medianTimeHours": round(median(hours), 2) if hours else None,
            "efficiency": round(figures.converted / figures.started * 100, 1)
            if figures.started
            else None,
            "timedBookings": len(hours),
        },
        "bookings": {
            "started": figures.started,
            "completed": figures.completed,
            "open": figures.started - figures.converted,
            "inProgress": None,
            "pending": None,
        },
        "period": _period(timeframe, since, now),
        "truncated": truncated,
    }


# --- customers -----------------------------------------------------------------------------------


def customers_document(
    counts: VisitorCounts, *, timeframe: str, since: datetime, now: datetime
) -> dict[str, Any]:
    """``data`` of ``GET /customers``: visitors active in the period, new (first seen in it) and
    returning (seen before it too)."""
    return {
        "customers": {
            "total": counts.active,
            "new": counts.new,
            "returning": counts.active - counts.new,
        },
        "period": _period(timeframe, since, now),
    }
