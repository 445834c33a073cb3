"""Consistent reads of a visitor: its profile, journeys and insights as every stored event makes
them.

A read takes the visitor's stored rows and the log events they do not reflect yet in one
snapshot (``Storage.visitor_view``), on whichever instance is asked, whoever owns the visitor's
partition: every instance reads the same, exact figures as soon as an event is acknowledged.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import attrs

from ...config import ScoringSettings
from ...domain.insights import insights_document
from ...domain.journeys import JOURNEY_STEP_TYPE, higher_stage
from ...domain.partitions import partition_of
from ...domain.profiles import ProfileDelta, ProfileState, delta_from_events, journey_rows
from ...domain.timefmt import iso_datetime
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
) -> dict[str, Any] | None:
    """The visitor's insights document (``domain.insights``): the live profile, scores
    computed now, and each model's latest ``history`` predictions; None for an unknown visitor."""
    profile, journeys = await read_visitor(
        reader, user_fingerprint, partitions=partitions, max_touchpoints=max_touchpoints
    )
    if profile is None:
        return None
    predictions = await reader.recent_predictions(user_fingerprint, history)
    return insights_document(
        profile, predictions, now, scoring, journeys=journeys, max_touchpoints=max_touchpoints
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
    return live, _with_pending(view.journeys, delta, max_touchpoints)


def _with_pending(
    stored: list[StoredJourney], pending: ProfileDelta, max_touchpoints: int
) -> list[StoredJourney]:
    journeys = {j.session_id: j for j in stored}
    for row in journey_rows(pending):
        points = [{**p, "at": iso_datetime(p["at"])} for p in row["touchpoints"]]
        old = journeys.get(row["session_id"])
        if old is None:
            journeys[row["session_id"]] = StoredJourney(
                row["session_id"],
                points[:max_touchpoints],
                row["stage"],
                row["first_source"],
                row["last_source"],
                row["started_at"],
                row["last_at"],
            )
        else:
            room = max(0, max_touchpoints - len(old.touchpoints))
            journeys[row["session_id"]] = attrs.evolve(
                old,
                touchpoints=old.touchpoints + points[:room],
                stage=higher_stage(old.stage, row["stage"]),
                last_touch_source=row["last_source"] or old.last_touch_source,
                started_at=min(old.started_at, row["started_at"]),
                updated_at=max(old.updated_at, row["last_at"]),
            )
    return sorted(journeys.values(), key=lambda j: j.started_at)
