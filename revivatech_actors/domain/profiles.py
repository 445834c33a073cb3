"""What stored events add to a visitor's profile. Pure: no I/O.

A :class:`ProfileDelta` is what a run of one visitor's events contributes: counters to add, times
to take the least or greatest of, days and event types to add to sets and maps. Applying deltas
is commutative and associative, so they can be coalesced in memory (:meth:`ProfileDelta.add`),
written by several instances at once, and applied in any order with the same result. A delta
also carries each session's journey (:class:`~.journeys.SessionJourney`): its touchpoints are
appended and its stage rises, also in any order.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from datetime import date, datetime
from sys import intern
from typing import Any, NamedTuple

import attrs

from ..messages import Event
from .journeys import JOURNEY_STEP_TYPE, EventFields, SessionJourney
from .sessions import PAGE_VIEW_TYPES, SessionDelta, session_deltas

__all__ = [
    "BOOKING_COMPLETED_TYPES",
    "BOOKING_STARTED_TYPES",
    "ProfileDelta",
    "ProfileState",
    "Touch",
    "delta_from_events",
    "journey_rows",
    "sessions_of",
    "touch_of",
]

#: Event types that count as a booking started / completed (the revenue is the event's value).
BOOKING_STARTED_TYPES = frozenset({"booking_started"})
BOOKING_COMPLETED_TYPES = frozenset({"booking_completed"})


def _least(a: datetime | None, b: datetime | None) -> datetime | None:
    return b if a is None else a if b is None else min(a, b)


def _greatest(a: datetime | None, b: datetime | None) -> datetime | None:
    return b if a is None else a if b is None else max(a, b)


def _later_id(
    a: str | None, a_at: datetime | None, b: str | None, b_at: datetime | None
) -> tuple[str | None, datetime | None]:
    """Of two (customer id, time) pairs, the later; on equal times the greater id, so the
    result does not depend on the order of merging (storage applies the same rule)."""
    if b_at is None:
        return a, a_at
    if a_at is None or b_at > a_at or (b_at == a_at and (b or "") > (a or "")):
        return b, b_at
    return a, a_at


def _add_counts(counts: dict[str, int], more: dict[str, int]) -> None:
    for key, count in more.items():
        counts[key] = counts.get(key, 0) + count


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
    sessions: dict[str, SessionJourney] = attrs.Factory(
        dict
    )  # by session id, in order of appearance
    device_counts: dict[str, int] = attrs.Factory(dict)  # events per device_type
    customer_id: str | None = None  # the user_id of the latest event with one
    customer_id_at: datetime | None = None

    def add(self, event: EventFields) -> None:
        """Count one more event of this visitor (in place: no copy per event)."""
        self.events += 1
        event_type = event.event_type
        self.event_counts[event_type] = self.event_counts.get(event_type, 0) + 1
        moment = event.timestamp
        self.active_days.add(moment.date())
        journey = self.sessions.get(event.session_id)
        if journey is None:
            journey = self.sessions[event.session_id] = SessionJourney(event.session_id)
        journey.add(event)
        if self.first_seen is None or moment < self.first_seen:
            self.first_seen = moment
        if self.last_seen is None or moment > self.last_seen:
            self.last_seen = moment
        device = event.device_type
        if device is not None:
            self.device_counts[device] = self.device_counts.get(device, 0) + 1
        if event.user_id is not None:
            self.customer_id, self.customer_id_at = _later_id(
                self.customer_id, self.customer_id_at, event.user_id, moment
            )
        if event_type in PAGE_VIEW_TYPES:
            self.page_views += 1
        elif event_type in BOOKING_STARTED_TYPES:
            self.bookings_started += 1
        elif event_type in BOOKING_COMPLETED_TYPES:
            self.bookings_completed += 1
            self.value += event.value or 0.0
            self.last_booking_at = _greatest(self.last_booking_at, moment)


def journey_rows(d: ProfileDelta) -> Iterator[dict[str, Any]]:
    """One row per session of the delta. A session that started after a booking completed in
    another of the delta's sessions is ``retention`` unless it booked too (storage does the same
    against the visitor's stored last booking)."""
    booked = [j.booked_at for j in d.sessions.values() if j.booked_at is not None]
    first_booking = min(booked) if booked else None
    for j in d.sessions.values():
        stage = j.stage
        if (
            stage != "booking"
            and first_booking is not None
            and j.started_at is not None
            and first_booking < j.started_at
        ):
            stage = "retention"
        yield {
            "user_fingerprint": d.user_fingerprint,
            "session_id": j.session_id,
            "touchpoints": sorted(j.touchpoints, key=_at),
            "stage": stage,
            "started_at": j.started_at,
            "last_at": j.last_at,
            "first_source": j.first_source,
            "first_source_at": j.first_source_at,
            "last_source": j.last_source,
            "last_source_at": j.last_source_at,
        }


def sessions_of(deltas: Iterable[ProfileDelta]) -> list[SessionDelta]:
    """What ``deltas`` add to the ``analytics_sessions`` rows: one delta per session id."""
    return session_deltas((d.user_fingerprint, j) for d in deltas for j in d.sessions.values())


def _at(touchpoint: dict[str, Any]) -> datetime:
    return touchpoint["at"]


class Touch(NamedTuple):
    """What a profile and a journey need of one event: the rest (ids, receipt time, most
    properties) is left behind, so a visitor's unwritten events cost a fraction of the event."""

    event_type: str
    session_id: str
    timestamp: datetime
    page_url: str | None
    referrer: str | None
    value: float | None
    properties: dict[str, Any]  # only a journey step's (its step and stage); else empty
    device_type: str | None
    user_id: str | None


_NO_PROPERTIES: dict[str, Any] = {}
#: Builds a Touch from a tuple without the Python-level ``__new__`` NamedTuple adds (one per
#: stored event).
_new_touch = tuple.__new__


def touch_of(event: Event) -> Touch:
    """The :class:`Touch` of a stored event. Its strings are interned (validation interns those
    of ingested events; this call is then a lookup): a visitor's touches share one copy of a
    session id, an event type or a page (they repeat), which halves their memory."""
    page = event.page_url
    event_type = event.event_type
    details = event.details
    return _new_touch(
        Touch,
        (
            intern(event_type),
            intern(event.session_id),
            event.timestamp,
            None if page is None else intern(page),
            event.referrer,
            event.value,
            event.properties if event_type == JOURNEY_STEP_TYPE else _NO_PROPERTIES,
            None if details is None else details.device_type,
            None if details is None else details.user_id,
        ),
    )


def delta_from_events(user_fingerprint: str, events: Iterable[EventFields]) -> ProfileDelta:
    """What ``events`` (all of ``user_fingerprint``) add to the profile."""
    delta = ProfileDelta(user_fingerprint)
    for event in events:
        delta.add(event)
    return delta


@attrs.define
class ProfileState:
    """A visitor's profile as storage holds it (``user_behavior_profiles``), and as a profile
    actor keeps it current by applying deltas.

    ``total_sessions`` and ``days_active`` count rows of sets storage keeps (a session or a day
    counts once, whichever instance brought it), so they come from storage, not from deltas.
    ``total_session_seconds`` is summed from ``analytics_sessions`` when the profile is read.
    ``scores`` are the values last recorded in ``ml_predictions`` by model type, ``segment`` the
    last one the scorer stored. ``version`` counts the stored profile's writes; scores recorded
    from this state say they reflect it."""

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
    segment: str | None = None
    scores: dict[str, float] = attrs.Factory(dict)
    updated_at: datetime | None = None
    device_counts: dict[str, int] = attrs.Factory(dict)  # events per device_type
    customer_id: str | None = None  # the user_id of the latest event with one
    customer_id_at: datetime | None = None
    version: int = 0

    def apply(self, delta: ProfileDelta) -> None:
        """Add ``delta``'s counters and times to the state (sessions and days stay as stored)."""
        self.total_events += delta.events
        self.total_page_views += delta.page_views
        self.bookings_started += delta.bookings_started
        self.total_bookings += delta.bookings_completed
        self.total_value += delta.value
        self.first_seen = _least(self.first_seen, delta.first_seen)
        self.last_seen = _greatest(self.last_seen, delta.last_seen)
        self.last_booking_at = _greatest(self.last_booking_at, delta.last_booking_at)
        _add_counts(self.event_counts, delta.event_counts)
        _add_counts(self.device_counts, delta.device_counts)
        self.customer_id, self.customer_id_at = _later_id(
            self.customer_id, self.customer_id_at, delta.customer_id, delta.customer_id_at
        )

    def plus(self, *deltas: ProfileDelta | None) -> ProfileState:
        """A copy with ``deltas`` applied (this state is left as it is)."""
        live = attrs.evolve(
            self,
            event_counts=dict(self.event_counts),
            scores=dict(self.scores),
            device_counts=dict(self.device_counts),
        )
        for delta in deltas:
            if delta is not None:
                live.apply(delta)
        return live
