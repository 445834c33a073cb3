"""The admin pages' reports (admin): ``GET /api/analytics/dashboard``, ``/revenue``,
``/performance``, ``/customers`` and the visitor list ``GET /api/analytics/insights``. Parameters
are parsed by pure functions (a bad one is a 400 naming it), storage reads them with bound
parameters only, ``domain.reports`` does the maths."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from quart import Quart, request

from ..config import FunnelSettings
from ..domain.funnel import FunnelQuery, ParameterError, funnel_document, parse_timeframe
from ..domain.profiles import BOOKING_COMPLETED_TYPES, BOOKING_STARTED_TYPES
from ..domain.reports import (
    booking_figures,
    customers_document,
    insights_page_document,
    parse_page,
    performance_document,
    revenue_document,
    revenue_range,
    top_user_row,
)
from ..domain.timefmt import iso_datetime
from ..storage import QueryTimeout, Storage, StorageError
from .auth import AdminAuth, admin_only
from .insights import _within_deadline
from .responses import error_response, json_response

__all__ = ["register_report_routes"]

#: The original's default timeframes: the dashboard looks at a day, the report pages at a month.
DASHBOARD_TIMEFRAME = "24 hours"
REPORT_TIMEFRAME = "30 days"
#: Visitors listed in the dashboard's topUsers (as the original listed).
TOP_USERS = 10
#: Most booking events one performance answer reads (the latest of the period): bounds its memory.
MAX_BOOKING_EVENTS = 200_000
_RETRY_AFTER = {"Retry-After": "5"}


def _bad(exc: ParameterError):
    return error_response(
        400,
        "invalid_parameter",
        str(exc),
        details=[{"field": exc.parameter, "message": exc.message}],
    )


def _timeframe(args: Mapping[str, str], default: str) -> tuple[float, str]:
    """``timeframe`` (the only parameter of these routes) as seconds and normalised text."""
    unknown = sorted(set(args) - {"timeframe"})
    if unknown:
        raise ParameterError(unknown[0], "unknown parameter; this report takes timeframe only")
    return parse_timeframe(args.get("timeframe", default))


def _period(default: str) -> tuple[datetime, datetime, str]:
    """(since, now, normalised timeframe) of the request's ``timeframe``; ParameterError if bad."""
    seconds, timeframe = _timeframe(request.args.to_dict(), default)
    now = datetime.now(UTC)
    return now - timedelta(seconds=seconds), now, timeframe


def register_report_routes(
    app: Quart,
    auth: AdminAuth,
    *,
    funnel_settings: FunnelSettings,
    reader: Storage,
    realtime_document: Callable[[], Awaitable[dict[str, Any]]],
) -> None:
    """The report routes, read from ``reader`` (storage the web layer reads from); the
    dashboard's overview is ``realtime_document()``'s."""

    @app.get("/api/analytics/insights")
    @admin_only(auth)
    async def visitors():
        try:
            page, limit = parse_page(request.args.to_dict())
        except ParameterError as exc:
            return _bad(exc)
        found = await _within_deadline(lambda: reader.profiles_page((page - 1) * limit, limit))
        if not hasattr(found, "profiles"):
            return found
        return json_response({"success": True, "data": insights_page_document(page, limit, found)})

    @app.get("/api/analytics/revenue")
    @admin_only(auth)
    async def revenue():
        if request.args:
            name = sorted(request.args)[0]
            return _bad(ParameterError(name, "unknown parameter; the revenue report takes none"))
        now = datetime.now(UTC)
        since, until = revenue_range(now)
        days = await _within_deadline(
            lambda: reader.revenue_by_day(since, until, BOOKING_COMPLETED_TYPES)
        )
        if not isinstance(days, list):
            return days
        return json_response(
            {"success": True, "data": revenue_document(days, now), "timestamp": iso_datetime(now)}
        )

    @app.get("/api/analytics/performance")
    @admin_only(auth)
    async def performance():
        try:
            since, now, timeframe = _period(REPORT_TIMEFRAME)
        except ParameterError as exc:
            return _bad(exc)
        # starts up to one conversion window before the period pair with its completions
        lookback = since - timedelta(seconds=funnel_settings.window)
        types = BOOKING_STARTED_TYPES | BOOKING_COMPLETED_TYPES
        events = await _within_deadline(
            lambda: reader.booking_events(
                lookback, now + timedelta(seconds=1), types, MAX_BOOKING_EVENTS
            )
        )
        if not isinstance(events, list):
            return events
        figures = booking_figures(
            events,
            since=since,
            window=funnel_settings.window,
            started_types=BOOKING_STARTED_TYPES,
            completed_types=BOOKING_COMPLETED_TYPES,
        )
        data = performance_document(
            figures,
            timeframe=timeframe,
            since=since,
            now=now,
            truncated=len(events) >= MAX_BOOKING_EVENTS,
        )
        return json_response({"success": True, "data": data, "timestamp": iso_datetime(now)})

    @app.get("/api/analytics/customers")
    @admin_only(auth)
    async def customers():
        try:
            since, now, timeframe = _period(REPORT_TIMEFRAME)
        except ParameterError as exc:
            return _bad(exc)
        counts = await _within_deadline(lambda: reader.visitor_counts(since))
        if not hasattr(counts, "active"):
            return counts
        data = customers_document(counts, timeframe=timeframe, since=since, now=now)
        return json_response({"success": True, "data": data, "timestamp": iso_datetime(now)})

    @app.get("/api/analytics/dashboard")
    @admin_only(auth)
    async def dashboard():
        try:
            since, now, timeframe = _period(DASHBOARD_TIMEFRAME)
        except ParameterError as exc:
            return _bad(exc)
        # each named funnel (the default steps when none is named), over the timeframe
        named = funnel_settings.named_steps() or {None: funnel_settings.steps}

        async def funnels() -> list[dict[str, Any]]:
            shown = []
            for name, steps in named.items():
                query = FunnelQuery(
                    tuple(steps),
                    since,
                    now,
                    funnel_settings.window,
                    None,
                    name=name,
                    timeframe=timeframe,
                )
                counted = await reader.funnel(query, timeout=funnel_settings.timeout)
                shown.append(funnel_document(query, counted, computed_at=now, cached=False))
            return shown

        try:  # bounded by funnel.timeout per funnel, as GET /funnel is
            computed = await funnels()
        except QueryTimeout:
            return error_response(
                503,
                "funnel_timeout",
                f"a dashboard funnel took longer than funnel.timeout = "
                f"{funnel_settings.timeout:g} s; ask a shorter timeframe",
                headers=_RETRY_AFTER,
            )
        except StorageError as exc:
            return error_response(
                503,
                "storage_unavailable",
                f"the dashboard cannot be computed now: {exc}",
                headers=_RETRY_AFTER,
            )
        top = await _within_deadline(lambda: reader.top_profiles(since, TOP_USERS))
        if not isinstance(top, list):
            return top
        realtime = await realtime_document()
        data = {
            "overview": realtime["overview"],
            "funnels": computed,
            "topUsers": [top_user_row(p) for p in top],
            "timeframe": timeframe,
            "lastUpdated": iso_datetime(now),
        }
        return json_response({"success": True, "data": data})
