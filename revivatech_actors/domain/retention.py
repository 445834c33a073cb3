"""The data lifecycle's rules: what the retention janitor deletes, how it paces itself, and the
dead-letter page's parameters. Pure: no I/O.

Retention deletes, of each table below, the rows whose time is before the *cutoff*, ``now``
minus ``retention.days`` (0 = keep forever). Profiles and visitor days are never deleted by it:
they are a visitor's totals. Erasure (``DELETE /api/analytics/users/{fingerprint}``) removes
every row of one visitor from every table keyed by visitor.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta

import attrs

__all__ = [
    "ERASED_TABLES",
    "PURGED_TABLES",
    "RejectedQuery",
    "cutoff_of",
    "pause_after",
    "rejected_query",
]

#: What the janitor deletes, in the order it goes through them. A row is old by, in order:
#: ``event_timestamp`` (and only below its partition's horizon), ``last_activity_at``,
#: ``updated_at``, ``created_at``, and when it was last received (docs/operations.md,
#: "Data lifecycle").
PURGED_TABLES = (
    "analytics_events",
    "analytics_sessions",
    "customer_journeys",
    "ml_predictions",
    "rejected_events",
)

#: Every table that holds rows of one visitor, in the order an erasure reports them.
ERASED_TABLES = (
    "analytics_events",
    "analytics_sessions",
    "customer_journeys",
    "visitor_active_days",
    "ml_predictions",
    "user_behavior_profiles",
    "rejected_events",
)

#: Dead letters listed per page when the request gives no ``limit``, and the most.
DEFAULT_REJECTED_LIMIT = 50
MAX_REJECTED_LIMIT = 500


def cutoff_of(now: datetime, days: int) -> datetime | None:
    """The instant before which rows are old, or None when ``days`` is 0 (keep forever)."""
    if days < 0:
        msg = f"retention days must be >= 0, got {days}"
        raise ValueError(msg)
    return None if days == 0 else now - timedelta(days=days)


def pause_after(took: float, max_share: float) -> float:
    """Seconds to rest after a batch that took ``took`` seconds, so that deleting keeps storage
    busy at most ``max_share`` (0 < share <= 1) of the time."""
    if not 0 < max_share <= 1:
        msg = f"max_share must be > 0 and <= 1, got {max_share}"
        raise ValueError(msg)
    return max(0.0, took) * (1 / max_share - 1)


@attrs.frozen
class RejectedQuery:
    """A page of dead letters: ``limit`` letters with ids below ``before`` (None: the newest)."""

    limit: int
    before: int | None


def rejected_query(args: Mapping[str, str]) -> RejectedQuery | list[dict[str, str]]:
    """``GET /api/analytics/rejected``'s query parameters, or the problems with them as
    ``{"field", "message"}`` details: ``limit`` (1 to ``MAX_REJECTED_LIMIT``) and ``cursor`` (the
    ``nextCursor`` of the previous page: a positive integer)."""
    problems = []
    raw_limit = args.get("limit", str(DEFAULT_REJECTED_LIMIT))
    if (
        not (raw_limit.isascii() and raw_limit.isdigit())
        or not 1 <= int(raw_limit) <= MAX_REJECTED_LIMIT
    ):
        problems.append(
            {
                "field": "limit",
                "message": f"limit must be an integer between 1 and {MAX_REJECTED_LIMIT}, "
                f"got {raw_limit!r}",
            }
        )
    raw_cursor = args.get("cursor")
    if raw_cursor is not None and (
        not (raw_cursor.isascii() and raw_cursor.isdigit())
        or int(raw_cursor) < 1
        or len(raw_cursor) > 19
    ):
        problems.append(
            {
                "field": "cursor",
                "message": "cursor must be the nextCursor of a previous page "
                f"(a positive integer), got {raw_cursor!r}",
            }
        )
    if problems:
        return problems
    return RejectedQuery(int(raw_limit), None if raw_cursor is None else int(raw_cursor))
