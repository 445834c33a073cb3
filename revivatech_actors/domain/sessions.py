"""What a profile write adds to each ``analytics_sessions`` row. Pure: no I/O.

A session row is updated only with commutative deltas (counts added, ``least``/``greatest`` of
times, entry and exit taken from the earliest and latest event), so writes can be applied in any
order, by any instance, and give the same row. The profile writer sends them with the visitor's
profile and journeys (``storage.apply_profile_deltas``): a session row is one more summary of the
visitor's events, written when its profile is, not in the events' own commit.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from datetime import datetime
from typing import Protocol

import attrs

__all__ = ["PAGE_VIEW_TYPES", "SessionDelta", "SessionRun", "session_deltas", "utm_source"]

_UTM_SOURCE = re.compile(r"[?&]utm_source=([^&#]*)")

#: Event types counted as page views.
PAGE_VIEW_TYPES = frozenset({"page_view", "pageview"})


@attrs.frozen(slots=True)
class SessionDelta:
    session_id: str
    user_fingerprint: str  # of the earliest events: the row keeps the one it was created with
    started_at: datetime  # earliest event time
    last_activity_at: datetime  # latest event time
    event_count: int
    page_views: int
    entry_page: str | None  # page of the earliest event
    exit_page: str | None  # page of the latest event
    referrer: str | None  # referrer of the earliest event
    utm_source: str | None  # utm_source of the earliest event's page URL

    def merged(self, later: SessionDelta) -> SessionDelta:
        """Both deltas as one, by the rules storage applies to a row (entry fields from the strictly
        earlier start, exit page from the later or equal last activity)."""
        entry = later if later.started_at < self.started_at else self
        exit_ = later if later.last_activity_at >= self.last_activity_at else self
        return SessionDelta(
            session_id=self.session_id,
            user_fingerprint=entry.user_fingerprint,
            started_at=entry.started_at,
            last_activity_at=exit_.last_activity_at,
            event_count=self.event_count + later.event_count,
            page_views=self.page_views + later.page_views,
            entry_page=entry.entry_page,
            exit_page=exit_.exit_page,
            referrer=entry.referrer,
            utm_source=entry.utm_source,
        )


def utm_source(page_url: str | None) -> str | None:
    """The first ``utm_source`` of a page URL's query string, as written (not percent-decoded),
    at most 256 characters."""
    if not page_url or "utm_source=" not in page_url:
        return None
    match = _UTM_SOURCE.search(page_url)
    return match.group(1)[:256] if match else None


class SessionRun(Protocol):
    """What a session's row takes from a run of its events (``journeys.SessionJourney`` is one)."""

    session_id: str
    started_at: datetime | None
    last_at: datetime | None
    event_count: int
    page_views: int
    entry_page: str | None
    entry_referrer: str | None
    exit_page: str | None


def session_deltas(journeys: Iterable[tuple[str, SessionRun]]) -> list[SessionDelta]:
    """One delta per session id from ``(user_fingerprint, journey)`` pairs, in order of first
    appearance. ``analytics_sessions`` keys its rows by session id alone, so one id sent under two
    visitors (a client reusing ids) is merged into one delta, as one row would take both."""
    by_id: dict[str, SessionDelta] = {}
    for user_fingerprint, j in journeys:
        if j.started_at is None or j.last_at is None:
            continue  # no event: nothing to add
        delta = SessionDelta(
            session_id=j.session_id,
            user_fingerprint=user_fingerprint,
            started_at=j.started_at,
            last_activity_at=j.last_at,
            event_count=j.event_count,
            page_views=j.page_views,
            entry_page=j.entry_page,
            exit_page=j.exit_page,
            referrer=j.entry_referrer,
            utm_source=utm_source(j.entry_page),
        )
        earlier = by_id.get(j.session_id)
        by_id[j.session_id] = delta if earlier is None else earlier.merged(delta)
    return list(by_id.values())
