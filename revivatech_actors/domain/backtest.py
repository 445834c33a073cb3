"""Backtests of the scores on stored history (docs/scoring.md, "How the scores are checked").
Pure: no I/O, no clock.

At a *cut-off* ``c`` in the past, a visitor's profile is rebuilt from their stored events up to
``c`` (never today's profile), the models score it as of ``c``, and what the visitor did in the
following horizon ``(c, c + horizon]`` is the label:

* lead: a completed booking in the horizon (the lead score's question);
* churn: no event at all in the horizon (the churn risk's question).

Engagement and price sensitivity have no such question and are not checked.

A sample is one visitor at one cut-off, for every visitor first seen at or before it. Cut-offs
(:func:`cutoffs`) are one horizon apart, the last one horizon before the newest event, so every
label is complete.

What callers can rely on:

* :class:`VisitorHistory` rebuilds exactly the :class:`~.scoring.ProfileSnapshot` the service
  would hold after the same events (tests compare it with the profile pipeline's);
* the same events and settings give the same samples, in the same order;
* :class:`SampleStream`, fed every visitor's events in one time-ordered stream, finds exactly
  the samples :func:`samples_of` finds visitor by visitor (tests compare them): a store can
  give events in time order from its time index, without sorting its whole history by visitor.
"""

from __future__ import annotations

import bisect
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime, timedelta
from typing import NamedTuple

import attrs

from .profiles import BOOKING_COMPLETED_TYPES, BOOKING_STARTED_TYPES
from .scoring import ProfileSnapshot
from .sessions import PAGE_VIEW_TYPES

__all__ = [
    "HistoryEvent",
    "Sample",
    "SampleStream",
    "VisitorHistory",
    "cutoffs",
    "samples_of",
]


class HistoryEvent(NamedTuple):
    """What a backtest needs of one stored event."""

    event_type: str
    session_id: str
    timestamp: datetime
    value: float | None


@attrs.define
class VisitorHistory:
    """A visitor's profile as of the events added so far (in time order), as the service would
    hold it: :meth:`snapshot`."""

    events: int = 0
    page_views: int = 0
    bookings_started: int = 0
    bookings_completed: int = 0
    value: float = 0.0
    first_seen: datetime | None = None
    last_seen: datetime | None = None
    last_booking_at: datetime | None = None
    event_counts: dict[str, int] = attrs.Factory(dict)
    days: set = attrs.Factory(set)
    sessions: dict[str, tuple[datetime, datetime]] = attrs.Factory(dict)  # id -> first, last

    def add(self, event: HistoryEvent) -> None:
        event_type, session_id, moment, value = event
        self.events += 1
        self.event_counts[event_type] = self.event_counts.get(event_type, 0) + 1
        self.days.add(moment.date())
        span = self.sessions.get(session_id)
        self.sessions[session_id] = (
            (moment, moment) if span is None else (min(span[0], moment), max(span[1], moment))
        )
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
            self.value += value or 0.0
            if self.last_booking_at is None or moment > self.last_booking_at:
                self.last_booking_at = moment

    def snapshot(self) -> ProfileSnapshot:
        return ProfileSnapshot(
            total_events=self.events,
            total_sessions=len(self.sessions),
            total_page_views=self.page_views,
            bookings_started=self.bookings_started,
            total_bookings=self.bookings_completed,
            total_value=self.value,
            first_seen=self.first_seen,
            last_seen=self.last_seen,
            last_booking_at=self.last_booking_at,
            total_session_seconds=sum(
                (last - first).total_seconds() for first, last in self.sessions.values()
            ),
            days_active=len(self.days),
            event_counts=self.event_counts,
        )


@attrs.frozen
class Sample:
    """One visitor at one cut-off: the profile as of it, and what followed in the horizon."""

    cutoff: datetime
    profile: ProfileSnapshot
    booked: bool  # a completed booking in the horizon
    inactive: bool  # no event in the horizon


def cutoffs(oldest: datetime, newest: datetime, horizon: timedelta, count: int) -> list[datetime]:
    """Up to ``count`` cut-offs, oldest first, one ``horizon`` apart, the last one ``horizon``
    before ``newest``; none earlier than ``oldest + horizon`` (a visitor needs a past to be
    judged on)."""
    found: list[datetime] = []
    cutoff = newest - horizon
    while len(found) < count and cutoff >= oldest + horizon:
        found.append(cutoff)
        cutoff -= horizon
    return found[::-1]


def samples_of(
    events: Sequence[HistoryEvent], at: Sequence[datetime], horizon: timedelta
) -> Iterable[Sample]:
    """One visitor's samples: at each cut-off of ``at`` (oldest first) where the visitor was
    already seen. ``events`` are all of the visitor's, in time order."""
    times = [event.timestamp for event in events]
    history = VisitorHistory()
    taken = 0
    for cutoff in at:
        upto = bisect.bisect_right(times, cutoff)
        for event in events[taken:upto]:
            history.add(event)
        taken = upto
        if history.events == 0:
            continue
        ahead = bisect.bisect_right(times, cutoff + horizon)
        future = events[upto:ahead]
        yield Sample(
            cutoff,
            history.snapshot(),
            booked=any(event.event_type in BOOKING_COMPLETED_TYPES for event in future),
            inactive=not future,
        )


@attrs.define
class _Open:
    """A sample whose horizon has not ended yet: its labels so far."""

    profile: ProfileSnapshot
    booked: bool = False
    inactive: bool = True


@attrs.define
class SampleStream:
    """The samples of :func:`samples_of` for every visitor, from one stream of all their
    events in time order (:meth:`add`, then :meth:`finish`): each sample goes to ``emit`` once
    its horizon is over, a cut-off's in the order its visitors were first seen.

    Holds one :class:`VisitorHistory` per visitor and one open sample per visitor seen by the
    newest cut-off passed, not their events: memory grows with visitors, not with history."""

    at: Sequence[datetime]
    horizon: timedelta
    emit: Callable[[Sample], None]
    histories: dict[str, VisitorHistory] = attrs.Factory(dict)
    _passed: int = 0  # cut-offs of ``at`` passed
    _open: dict[datetime, dict[str, _Open]] = attrs.Factory(dict)
    # The next moment a cut-off passes or a horizon ends: events before it only add up.
    _boundary: datetime | None = attrs.field(init=False)

    def __attrs_post_init__(self) -> None:
        self._boundary = self._next_boundary()

    def add(self, fingerprint: str, event: HistoryEvent) -> None:
        """Take the next event; its time is not before any added so far."""
        moment = event.timestamp
        if self._boundary is not None and moment > self._boundary:
            while self._passed < len(self.at) and self.at[self._passed] < moment:
                self._pass(self.at[self._passed])
            self._close(lambda cutoff: cutoff + self.horizon < moment)
            self._boundary = self._next_boundary()
        for samples in self._open.values():  # every open horizon holds ``moment``
            sample = samples.get(fingerprint)
            if sample is not None:
                sample.inactive = False
                sample.booked = sample.booked or event.event_type in BOOKING_COMPLETED_TYPES
        history = self.histories.get(fingerprint)
        if history is None:
            history = self.histories[fingerprint] = VisitorHistory()
        history.add(event)

    def finish(self) -> None:
        """The stream has ended: the remaining samples (their horizons saw nothing more)."""
        for cutoff in self.at[self._passed :]:
            self._pass(cutoff)
        self._close(lambda _cutoff: True)

    def _next_boundary(self) -> datetime | None:
        ends = [cutoff + self.horizon for cutoff in self._open]
        return min([*ends, *self.at[self._passed : self._passed + 1]], default=None)

    def _pass(self, cutoff: datetime) -> None:
        self._open[cutoff] = {fp: _Open(h.snapshot()) for fp, h in self.histories.items()}
        self._passed += 1

    def _close(self, ended: Callable[[datetime], bool]) -> None:
        for cutoff in [c for c in self._open if ended(c)]:
            for sample in self._open.pop(cutoff).values():
                self.emit(Sample(cutoff, sample.profile, sample.booked, sample.inactive))
