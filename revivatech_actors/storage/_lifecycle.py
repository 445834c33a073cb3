"""What the data lifecycle's storage calls take and return (``Storage.purge_step``,
``Storage.erase_visitor``, ``Storage.rejected_page``); shared by the engines."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

import attrs

__all__ = [
    "ERASE_DERIVED_QUERIES",
    "PURGE_BY_KEY_QUERIES",
    "PURGE_BY_TIME_QUERIES",
    "PurgeStep",
    "RejectedLetter",
    "fingerprint_needles",
]

#: The named queries (``sql/<engine>/queries/lifecycle.sql``) of each purged table: deleting
#: through the table's time index...
PURGE_BY_TIME_QUERIES = {
    "analytics_events": "purge_events",
    "ml_predictions": "purge_predictions",
    "rejected_events": "purge_dead_letters",
}
#: ... or walking the primary key: the first keys, and those after a key.
PURGE_BY_KEY_QUERIES = {
    "analytics_sessions": ("session_keys", "session_keys_after"),
    "customer_journeys": ("journey_keys", "journey_keys_after"),
}
#: An erasure's derived rows, by table: the profile first (a record that read it before waits
#: on its row).
ERASE_DERIVED_QUERIES = {
    "user_behavior_profiles": "erase_profile",
    "ml_predictions": "erase_predictions",
    "analytics_sessions": "erase_sessions",
    "customer_journeys": "erase_journeys",
    "visitor_active_days": "erase_days",
}


@attrs.frozen
class PurgeStep:
    """One batch of a purge: how many rows it deleted, and where the next batch resumes (None:
    the table holds nothing more to delete)."""

    deleted: int
    resume: Any = None


@attrs.frozen
class RejectedLetter:
    """A row of ``rejected_events`` (a dead letter), as the listing shows it."""

    id: int
    letter_id: str
    received_at: datetime
    last_received_at: datetime | None
    times_received: int
    source: str
    reasons: list[dict[str, Any]]
    payload: str


def fingerprint_needles(user_fingerprint: str) -> tuple[str, str]:
    """The visitor's fingerprint as a JSON string literal, as dead letters' payloads hold it:
    with non-ASCII characters as they are (validation letters) and escaped (database letters).
    An erasure deletes the letters whose payload holds either: a payload naming the visitor as
    a whole JSON value, not as part of a longer one."""
    return json.dumps(user_fingerprint, ensure_ascii=False), json.dumps(
        user_fingerprint, ensure_ascii=True
    )
