"""What the admin reports read from storage (``GET /dashboard``, ``/revenue``, ``/performance``,
``/customers``, ``/insights``): plain frozen values shared by the engines; the maths over them is
in ``domain.reports``."""

from __future__ import annotations

from datetime import date, datetime

import attrs

from ..domain.profiles import ProfileState

__all__ = ["BookingEvent", "DailyRevenue", "ProfilesPage", "VisitorCounts"]


@attrs.frozen
class ProfilesPage:
    """One page of visitor profiles, newest activity first, and how many profiles there are."""

    total: int
    profiles: list[ProfileState]


@attrs.frozen
class VisitorCounts:
    """Visitors seen at or after a moment: all of them, and those first seen then (new)."""

    active: int
    new: int


@attrs.frozen
class DailyRevenue:
    """Completed bookings of one UTC day: their summed value and how many there were."""

    day: date
    revenue: float
    orders: int


@attrs.frozen
class BookingEvent:
    """A booking event (started or completed): whose, which type, when, and its value."""

    user_fingerprint: str
    event_type: str
    at: datetime
    value: float | None
