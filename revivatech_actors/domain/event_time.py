"""Bounds on when an ingested event may say it happened. Pure functions, no I/O.

An event dated far ahead (a client clock set to 2099) would be the visitor's ``lastSeen`` for
good, so the visitor would never churn; such a time is replaced by the receive time, and the
time that was sent is kept in ``properties`` (:data:`SENT_TIMESTAMP`) with a warning. Old times
stay allowed (backfills), down to a configurable age.
"""

from __future__ import annotations

from datetime import datetime, timedelta

import attrs

from .timefmt import iso_datetime
from .validation import FieldError, ValidEvent, correct_clock_skew

__all__ = ["SENT_TIMESTAMP", "TimeBounds", "bound_event_time"]

#: The ``properties`` key that keeps a replaced ``timestamp`` (RFC 3339, UTC, as sent).
SENT_TIMESTAMP = "sent_timestamp"


@attrs.frozen
class TimeBounds:
    """``ingest.max_future_seconds`` and ``ingest.max_age_days`` (0: no lower bound)."""

    max_future_seconds: float
    max_age_days: int


def bound_event_time(
    event: ValidEvent, received_at: datetime, bounds: TimeBounds
) -> ValidEvent | list[FieldError]:
    """``event`` with its time within ``bounds`` of ``received_at``, or why it is refused.

    The time judged is the skew-corrected one (:func:`correct_clock_skew`), as it would be stored.
    More than ``max_future_seconds`` ahead: the event comes back without ``timestamp`` (so it is
    stored at its receive time), the sent ``timestamp`` in ``properties.sent_timestamp`` and a
    warning on ``timestamp``; refused if ``properties.sent_timestamp`` already holds another
    value. More than ``max_age_days`` (when not 0) behind: refused, naming the setting.
    An event without ``timestamp`` comes back unchanged.
    """
    if event.timestamp is None:
        return event
    happened = correct_clock_skew(event.timestamp, event.sent_at, received_at)
    ahead = (happened - received_at).total_seconds()
    if ahead > bounds.max_future_seconds:
        sent = iso_datetime(event.timestamp)
        if event.properties.get(SENT_TIMESTAMP, sent) != sent:
            return [
                FieldError(
                    f"properties.{SENT_TIMESTAMP}",
                    "is where a timestamp too far ahead is kept, and it holds another value",
                )
            ]
        warning = FieldError(
            "timestamp",
            f"is {ahead:.0f} s ahead of the time the event was received, more than "
            f"ingest.max_future_seconds = {bounds.max_future_seconds:g}; replaced by "
            f"the receive time, the sent value kept in properties.{SENT_TIMESTAMP}",
        )
        return attrs.evolve(
            event,
            timestamp=None,
            properties={**event.properties, SENT_TIMESTAMP: sent},
            warnings=(*event.warnings, warning),
        )
    if bounds.max_age_days and happened < received_at - timedelta(days=bounds.max_age_days):
        days = (received_at - happened).total_seconds() / 86400
        return [
            FieldError(
                "timestamp",
                f"is {days:.1f} days before the time the event was received, older than "
                f"ingest.max_age_days = {bounds.max_age_days}",
            )
        ]
    return event
