"""Consistent reads of a visitor: its profile, journeys and insights as every stored event makes
them.

A read takes the visitor's stored rows and the log events they do not reflect yet in one
snapshot (``Storage.visitor_view``), on whichever instance is asked, whoever owns the visitor's
partition: every instance reads the same, exact figures as soon as an event is acknowledged.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

import orjson

from ...config import ScoringSettings
from ...domain.insights import insights_document
from ...domain.journeys import JOURNEY_STEP_TYPE, JourneyRow, merge_journey
from ...domain.learned import NO_MODELS, LearnedModel
from ...domain.partitions import partition_of
from ...domain.profiles import ProfileDelta, ProfileState, delta_from_events, journey_rows
from ...storage import Storage, StoredJourney
from ...storage._records import VisitorView

__all__ = ["journey_steps", "live_state", "read_insights", "read_visitor"]


async def read_visitor(
    reader: Storage, user_fingerprint: str, *, partitions: int, max_touchpoints: int
) -> tuple[ProfileState | None, list[StoredJourney]]:
    """The visitor's profile and journeys as every event stored so far makes them (None and
    [] for a visitor of whom nothing is stored)."""
    view = await reader.visitor_view(user_fingerprint, partition_of(user_fingerprint, partitions))
    return live_state(view, user_fingerprint, max_touchpoints)


async def read_insights(
    reader: Storage,
    user_fingerprint: str,
    *,
    partitions: int,
    max_touchpoints: int,
    history: int,
    scoring: ScoringSettings,
    now: datetime,
    learned: Mapping[str, LearnedModel] = NO_MODELS,
) -> dict[str, Any] | None:
    """The visitor's insights document (``domain.insights``): the live profile, scores
    computed now (with the ``learned`` models in use), and each model's latest ``history``
    predictions; None for an unknown visitor."""
    profile, journeys = await read_visitor(
        reader, user_fingerprint, partitions=partitions, max_touchpoints=max_touchpoints
    )
    if profile is None:
        return None
    predictions = await reader.recent_predictions(user_fingerprint, history)
    return insights_document(
        profile,
        predictions,
        now,
        scoring,
        journeys=journeys,
        max_touchpoints=max_touchpoints,
        learned=learned,
    )


def journey_steps(profile: ProfileState | None) -> int:
    """How many explicit journey steps ``profile`` counts (0 without a profile)."""
    return 0 if profile is None else profile.event_counts.get(JOURNEY_STEP_TYPE, 0)


def live_state(
    view: VisitorView, user_fingerprint: str, max_touchpoints: int
) -> tuple[ProfileState | None, list[StoredJourney]]:
    """The visitor's profile and journeys: the stored rows of ``view`` plus its tail. Sessions
    and days of the tail that storage does not count yet count as new."""
    if not view.tail:
        return view.profile, view.journeys
    delta = delta_from_events(user_fingerprint, view.tail)
    base = view.profile or ProfileState(user_fingerprint=user_fingerprint)
    live = base.plus(delta)
    live.total_sessions += len(delta.sessions.keys() - view.keys.sessions)
    live.days_active += len(delta.active_days - view.keys.days)
    booked_at = None if view.profile is None else view.profile.last_booking_at
    return live, _with_pending(view.journeys, delta, max_touchpoints, booked_at)


def _with_pending(
    stored: list[StoredJourney],
    pending: ProfileDelta,
    max_touchpoints: int,
    booked_at: datetime | None,
) -> list[StoredJourney]:
    """The stored journeys with the pending sessions merged in by the rule storage writes them
    with (``merge_journey``), so a read before the write shows what the write will store."""
    journeys = {j.session_id: j for j in stored}
    for row in journey_rows(pending):
        new = JourneyRow(
            orjson.loads(orjson.dumps(row["touchpoints"])),  # as storage keeps them: JSON
            row["stage"],
            row["first_source"],
            row["first_source_at"],
            row["last_source"],
            row["last_source_at"],
            row["started_at"],
            row["last_at"],
        )
        sid = row["session_id"]
        old = journeys.get(sid)
        merged = merge_journey(
            None if old is None else _journey_row(old), new, max_touchpoints, booked_at
        )
        journeys[sid] = StoredJourney(
            sid,
            merged.touchpoints,
            merged.stage,
            merged.first_source,
            merged.last_source,
            merged.started_at,
            merged.last_at,
            merged.first_source_at,
            merged.last_source_at,
        )
    return sorted(journeys.values(), key=lambda j: j.started_at)


def _journey_row(stored: StoredJourney) -> JourneyRow:
    return JourneyRow(
        stored.touchpoints,
        stored.stage,
        stored.first_touch_source,
        stored.first_touch_at,
        stored.last_touch_source,
        stored.last_touch_at,
        stored.started_at,
        stored.updated_at,
    )
