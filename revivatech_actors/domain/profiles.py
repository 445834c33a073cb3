"""What stored events add to a visitor's profile. Pure: no I/O.

A :class:`ProfileDelta` is what a run of one visitor's events contributes: counters to add, times
to take the least or greatest of, days and event types to add to sets and maps. Applying deltas
is commutative and associative, so they can be coalesced in memory (:meth:`ProfileDelta.add`),
written by several instances at once, and applied in any order with the same result.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date, datetime

import attrs

from ..messages import Event
from .sessions import PAGE_VIEW_TYPES

__all__ = [
    "BOOKING_COMPLETED_TYPES",
    "BOOKING_STARTED_TYPES",
    "ProfileDelta",
    "ProfileState",
    "Rollups",
    "delta_from_events",
]

#: Event types that count as a booking started / completed (the revenue is the event's value).
BOOKING_STARTED_TYPES = frozenset({"booking_started"})
BOOKING_COMPLETED_TYPES = frozenset({"booking_completed"})


def _least(a: datetime | None, b: datetime | None) -> datetime | None:
    return b if a is None else a if b is None else min(a, b)


def _greatest(a: datetime | None, b: datetime | None) -> datetime | None:
    return b if a is None else a if b is None else max(a, b)


@attrs.define
class ProfileDelta:
    """What a run of one visitor's events adds to the profile; an accumulator (:meth:`add`)."""

    user_fingerprint: str
    events: int = 0
    page_views: int = 0
    bookings_started: int = 0
    bookings_completed: int = 0
    value: float = 0.0  # revenue of completed bookings
    first_seen: datetime | None = None
    last_seen: datetime | None = None
    last_booking_at: datetime | None = None
    event_counts: dict[str, int] = attrs.Factory(dict)
    active_days: set[date] = attrs.Factory(set)
    sessions: set[str] = attrs.Factory(set)

    def add(self, event: Event) -> None:
        """Count one more event of this visitor (in place: no copy per event)."""
        self.events += 1
        event_type = event.event_type
        self.event_counts[event_type] = self.event_counts.get(event_type, 0) + 1
        moment = event.timestamp
        self.active_days.add(moment.date())
        self.sessions.add(event.session_id)
        if self.first_seen is None or moment < self.first_seen:
            self.first_seen = moment
        if self.last_seen is None or moment > self.last_seen:
            self.last_seen = moment
        if event_type in PAGE_VIEW_TYPES:
            self.page_views += 1
        elif event_type in BOOKING_STARTED_TYPES:
            self.bookings_started += 1
        elif event_type in BOOKING_COMPLETED_TYPES:
            self.bookings_completed += 1
            self.value += event.value or 0.0
            self.last_booking_at = _greatest(self.last_booking_at, moment)


def delta_from_events(user_fingerprint: str, events: Iterable[Event]) -> ProfileDelta:
    """What ``events`` (all of ``user_fingerprint``) add to the profile."""
    delta = ProfileDelta(user_fingerprint)
    for event in events:
        delta.add(event)
    return delta


@attrs.define
class ProfileState:
    """A visitor's profile as a profile actor holds it: loaded from storage, then kept current by
    applying deltas. ``total_sessions`` and ``days_active`` come back from storage after each
    flush (:class:`Rollups`). ``total_session_seconds`` is summed from ``analytics_sessions`` when
    the profile is loaded (storage keeps it there, per session; not refreshed while active)."""

    user_fingerprint: str
    total_events: int = 0
    total_sessions: int = 0
    total_page_views: int = 0
    bookings_started: int = 0
    total_bookings: int = 0
    total_value: float = 0.0
    first_seen: datetime | None = None
    last_seen: datetime | None = None
    last_booking_at: datetime | None = None
    total_session_seconds: float = 0.0
    days_active: int = 0
    event_counts: dict[str, int] = attrs.Factory(dict)

    def apply(self, delta: ProfileDelta) -> None:
        """Add ``delta``'s counters and times to the state."""
        self.total_events += delta.events
        self.total_page_views += delta.page_views
        self.bookings_started += delta.bookings_started
        self.total_bookings += delta.bookings_completed
        self.total_value += delta.value
        self.first_seen = _least(self.first_seen, delta.first_seen)
        self.last_seen = _greatest(self.last_seen, delta.last_seen)
        self.last_booking_at = _greatest(self.last_booking_at, delta.last_booking_at)
        for event_type, count in delta.event_counts.items():
            self.event_counts[event_type] = self.event_counts.get(event_type, 0) + count

    def set_rollups(self, rollups: Rollups) -> None:
        """Take the counts storage keeps exactly (a day or a session counts once, whichever
        instance brought it first)."""
        self.total_sessions = rollups.total_sessions
        self.days_active = rollups.days_active


@attrs.frozen
class Rollups:
    """Profile counts storage keeps exactly, returned after each flush."""

    total_sessions: int
    days_active: int
