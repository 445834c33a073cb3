"""What a batch of stored events adds to each session row. Pure: no I/O.

A session row is updated only with commutative deltas (counts added, ``least``/``greatest`` of
times), so batches can be applied in any order, by any instance, and give the same row.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
import re

import attrs

from ..messages import Event

__all__ = ["PAGE_VIEW_TYPES", "SessionDelta", "aggregate_sessions", "utm_source"]

_UTM_SOURCE = re.compile(r"[?&]utm_source=([^&#]*)")

#: Event types counted as page views.
PAGE_VIEW_TYPES = frozenset({"page_view", "pageview"})


@attrs.frozen(slots=True)
class SessionDelta:
    session_id: str
    user_fingerprint: str
    started_at: datetime  # earliest event time in the batch
    last_activity_at: datetime  # latest event time in the batch
    event_count: int
    page_views: int
    entry_page: str | None  # page of the earliest event
    exit_page: str | None  # page of the latest event
    referrer: str | None  # referrer of the earliest event
    utm_source: str | None  # utm_source of the earliest event's page URL


def utm_source(page_url: str | None) -> str | None:
    """The first ``utm_source`` of a page URL's query string, as written (not percent-decoded,
    exactly as the PostgreSQL engine extracts it in SQL), at most 256 characters."""
    if not page_url or "utm_source=" not in page_url:
        return None
    match = _UTM_SOURCE.search(page_url)
    return match.group(1)[:256] if match else None


def aggregate_sessions(events: Iterable[Event]) -> list[SessionDelta]:
    """One delta per session in ``events``, in order of first appearance."""
    grouped: dict[str, list[Event]] = {}
    for event in events:
        grouped.setdefault(event.session_id, []).append(event)
    deltas = []
    for session_id, items in grouped.items():
        first = min(items, key=lambda e: e.timestamp)
        last = max(items, key=lambda e: e.timestamp)
        deltas.append(
            SessionDelta(
                session_id=session_id,
                user_fingerprint=first.user_fingerprint,
                started_at=first.timestamp,
                last_activity_at=last.timestamp,
                event_count=len(items),
                page_views=sum(e.event_type in PAGE_VIEW_TYPES for e in items),
                entry_page=first.page_url,
                exit_page=last.page_url,
                referrer=first.referrer,
                utm_source=utm_source(first.page_url),
            )
        )
    return deltas
