"""A visitor's insights: scores and segment of a profile, what the scorer records, and the JSON
documents of ``GET /api/analytics/insights/{fingerprint}`` and ``.../journey/{fingerprint}``.
Pure: no I/O."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

from .journeys import STEP_TOUCHPOINT_FIELDS, type_stage, visitor_stage
from .learned import NO_MODELS, LearnedModel, learned_score
from .profiles import ProfileState
from .scoring import (
    CHURN,
    ENGAGEMENT,
    LEAD,
    MODEL_TYPES,
    PRICE_SENSITIVITY,
    ProfileSnapshot,
    Score,
    ScoreRecord,
    changed_enough,
    score_all,
    segment,
)
from .sessions import PAGE_VIEW_TYPES
from .timefmt import iso_datetime

if TYPE_CHECKING:
    from ..config import ScoringSettings
    from ..storage import StoredJourney, StoredPrediction

__all__ = [
    "behavior",
    "conversion_probability",
    "evaluate",
    "insights_document",
    "journey_document",
    "journey_summary",
    "latest_session",
    "score_record",
    "snapshot",
]

#: Stage shown when a visitor has no journey (as the original answered).
UNKNOWN_STAGE = "unknown"


def snapshot(state: ProfileState) -> ProfileSnapshot:
    """What the scores read of a profile."""
    return ProfileSnapshot(
        total_events=state.total_events,
        total_sessions=state.total_sessions,
        total_page_views=state.total_page_views,
        bookings_started=state.bookings_started,
        total_bookings=state.total_bookings,
        total_value=state.total_value,
        first_seen=state.first_seen,
        last_seen=state.last_seen,
        last_booking_at=state.last_booking_at,
        total_session_seconds=state.total_session_seconds,
        days_active=state.days_active,
        event_counts=state.event_counts,
    )


def evaluate(
    state: ProfileState,
    now: datetime,
    settings: ScoringSettings,
    learned: Mapping[str, LearnedModel] = NO_MODELS,
) -> tuple[dict[str, Score], str]:
    """Every model's score of ``state`` at ``now``, and its segment: a model with a learned
    model in ``learned`` (by model type) scores with it, the others with their fixed formula."""
    p = snapshot(state)
    scores = score_all(p, now, settings)
    for model_type, model in learned.items():
        scores[model_type] = learned_score(model, p, now, settings)
    return scores, segment(p, scores, now, settings)


def score_record(
    state: ProfileState,
    now: datetime,
    settings: ScoringSettings,
    learned: Mapping[str, LearnedModel] = NO_MODELS,
) -> ScoreRecord:
    """What the scorer stores for ``state``: the scores that moved at least
    ``settings.record_threshold`` from the values last recorded (``state.scores``)."""
    scores, seg = evaluate(state, now, settings, learned)
    moved = tuple(
        score
        for model, score in scores.items()
        if changed_enough(state.scores.get(model), score.value, settings.record_threshold)
    )
    return ScoreRecord(
        user_fingerprint=state.user_fingerprint,
        scored_at=now,
        segment=seg,
        recorded=moved,
        version=state.version,
    )


def _time(moment: datetime | None) -> str | None:
    return None if moment is None else iso_datetime(moment)


def _profile(state: ProfileState, seg: str) -> dict[str, Any]:
    sessions = max(state.total_sessions, 0)
    return {
        "fingerprint": state.user_fingerprint,
        "totalEvents": state.total_events,
        "totalSessions": sessions,
        "totalPageViews": state.total_page_views,
        "bookingsStarted": state.bookings_started,
        "totalBookings": state.total_bookings,
        "totalValue": round(state.total_value, 2),
        "firstSeen": _time(state.first_seen),
        "lastSeen": _time(state.last_seen),
        "lastBookingAt": _time(state.last_booking_at),
        "segment": seg,
        "daysActive": state.days_active,
        "avgSessionSeconds": round(state.total_session_seconds / sessions, 1) if sessions else 0.0,
        "pagesPerSession": round(state.total_page_views / sessions, 2) if sessions else 0.0,
        "eventCounts": dict(state.event_counts),
    }


def _factors(score: Score) -> list[dict[str, Any]]:
    return [
        {"name": f.name, "value": f.value, "contribution": f.contribution} for f in score.factors
    ]


def conversion_probability(lead: float) -> float:
    """``scores.conversionProbability``: the lead score (0..100) as a share (0..1), four decimals.
    Not a calibrated probability: a ranking of how close a visitor looks to booking
    (docs/scoring.md, "conversionProbability")."""
    return round(min(max(lead, 0.0), 100.0) / 100.0, 4)


def latest_session(journeys: Sequence[StoredJourney]) -> str | None:
    """The session of the visitor's latest activity (of equal times, the later started)."""
    if not journeys:
        return None
    return max(journeys, key=lambda j: (j.updated_at, j.started_at)).session_id


def _page_views(journey: StoredJourney) -> int:
    return sum(
        1
        for point in journey.touchpoints
        if point.get("type") in PAGE_VIEW_TYPES and not point.get("step")
    )


def behavior(
    state: ProfileState, journeys: Sequence[StoredJourney], *, max_touchpoints: int
) -> dict[str, Any]:
    """The original's ``behavior``: average session length (seconds), page views per session,
    bounce rate and preferred device.

    ``bounceRate`` is the share (0..1) of the visitor's sessions with a page view that had exactly
    one (single-page sessions), counted from the sessions' touchpoints; a session holding
    ``max_touchpoints`` of them (its list was cut) counts as not bounced. None without a session
    with a page view. ``preferredDevice`` is the ``device_type`` most of the visitor's events
    carried (of equal counts, the first in alphabetical order); None when none carried one.
    """
    sessions = max(state.total_sessions, 0)
    viewed = bounced = 0
    for journey in journeys:
        views = _page_views(journey)
        if views:
            viewed += 1
            bounced += views == 1 and len(journey.touchpoints) < max_touchpoints
    return {
        "avgSessionDuration": round(state.total_session_seconds / sessions, 1) if sessions else 0.0,
        "pagesPerSession": round(state.total_page_views / sessions, 2) if sessions else 0.0,
        "bounceRate": round(bounced / viewed, 4) if viewed else None,
        "preferredDevice": preferred_device(state.device_counts),
    }


def preferred_device(device_counts: dict[str, int]) -> str | None:
    """The device type with the most events; ties go to the first in alphabetical order."""
    if not device_counts:
        return None
    return min(device_counts.items(), key=lambda item: (-item[1], item[0]))[0]


def journey_summary(journeys: Sequence[StoredJourney]) -> dict[str, Any]:
    """The original's ``journey``: ``currentStage`` (as ``GET /journey`` shows it, ``"unknown"``
    without a session) and ``stages``: each stage the visitor's sessions reached, with
    ``journey_stage``, the sessions at it (``visits``) and the latest activity at it
    (``lastActivityAt``), the most recent first."""
    by_stage: dict[str, tuple[int, datetime]] = {}
    for j in journeys:
        stage = j.stage or "awareness"
        visits, last = by_stage.get(stage, (0, j.updated_at))
        by_stage[stage] = (visits + 1, max(last, j.updated_at))
    ordered = sorted(by_stage.items(), key=lambda item: item[1][1], reverse=True)
    return {
        "currentStage": visitor_stage([{"stage": j.stage} for j in journeys]) or UNKNOWN_STAGE,
        "stages": [
            {"journey_stage": stage, "visits": visits, "lastActivityAt": iso_datetime(last)}
            for stage, (visits, last) in ordered
        ],
    }


def insights_document(
    state: ProfileState,
    predictions: Sequence[StoredPrediction],
    now: datetime,
    settings: ScoringSettings,
    *,
    journeys: Sequence[StoredJourney] = (),
    max_touchpoints: int = 500,
    learned: Mapping[str, LearnedModel] = NO_MODELS,
) -> dict[str, Any]:
    """``data`` of the insights answer: the profile, its scores as of ``now`` (with confidence and
    factors under ``scoreDetails``), the recorded predictions, and the original's ``behavior`` and
    ``journey`` from the visitor's ``journeys`` (in order of start, as storage lists them).
    ``profile.customerId`` is the ``user_id`` of the visitor's latest event that carried one.
    ``learned``: the learned models in use, by model type (see :func:`evaluate`)."""
    scores, seg = evaluate(state, now, settings, learned)
    names = {
        ENGAGEMENT: "engagement",
        LEAD: "lead",
        CHURN: "churnRisk",
        PRICE_SENSITIVITY: "priceSensitivity",
    }
    profile = _profile(state, seg)
    profile["sessionId"] = latest_session(journeys)
    profile["customerId"] = state.customer_id
    return {
        "profile": profile,
        "scores": {
            **{names[model]: scores[model].value for model in MODEL_TYPES},
            "conversionProbability": conversion_probability(scores[LEAD].value),
        },
        "behavior": behavior(state, journeys, max_touchpoints=max_touchpoints),
        "journey": journey_summary(journeys),
        "scoreDetails": {
            names[model]: {
                "value": scores[model].value,
                "confidence": scores[model].confidence,
                "modelVersion": scores[model].model_version,
                "factors": _factors(scores[model]),
            }
            for model in MODEL_TYPES
        },
        "predictions": [
            {
                "model_type": p.model_type,
                "prediction_value": p.prediction_value,
                "confidence_score": p.confidence_score,
                "factors": p.factors,
                "created_at": iso_datetime(p.created_at),
                "model_version": p.model_version,
            }
            for p in predictions
        ],
        "computedAt": iso_datetime(now),
    }


def _touchpoint(point: dict[str, Any]) -> dict[str, Any]:
    at = point.get("at")
    if isinstance(at, str):
        at = iso_datetime(datetime.fromisoformat(at))
    shown = {"type": point.get("type"), "page": point.get("page"), "at": at}
    if point.get("step"):
        shown["step"] = True
        for name in STEP_TOUCHPOINT_FIELDS:
            if point.get(name) is not None:
                shown[name] = point[name]
    return shown


def _with_time_spent(points: list[dict[str, Any]]) -> None:
    """Add ``timeSpentSeconds`` to a session's touchpoints (in time order): what an explicit step
    said it took, else the time until the session's next touchpoint; None for the last one."""
    for k, point in enumerate(points):
        spent = point.get("time_spent_seconds")
        if spent is None and k + 1 < len(points) and point["at"] and points[k + 1]["at"]:
            gap = datetime.fromisoformat(points[k + 1]["at"]) - datetime.fromisoformat(point["at"])
            spent = round(gap.total_seconds(), 3)
        point["timeSpentSeconds"] = spent


def journey_document(
    user_fingerprint: str, journeys: Sequence[StoredJourney], *, limit: int = 50
) -> dict[str, Any]:
    """``data`` of the journey answer: sessions in order of start, each with its touchpoints in
    time order (each with the time spent on it); the first touch (of the first session with a
    source) and the last touch (of the latest one) and the visitor's current stage. ``journey``
    lists the newest ``limit`` touchpoints of all sessions, newest first, under the original
    service's names (``sequence_number`` 1 is the visitor's first touchpoint), and ``totalSteps``
    counts them. An unknown visitor has no sessions and an empty journey."""
    sessions = []
    steps: list[tuple[dict[str, Any], str]] = []
    for j in journeys:
        points = sorted((_touchpoint(p) for p in j.touchpoints), key=lambda p: p["at"] or "")
        _with_time_spent(points)
        sessions.append(
            {
                "sessionId": j.session_id,
                "stage": j.stage,
                "startedAt": iso_datetime(j.started_at),
                "lastActivityAt": iso_datetime(j.updated_at),
                "firstTouch": j.first_touch_source,
                "lastTouch": j.last_touch_source,
                "touchpoints": points,
            }
        )
        steps.extend((point, j.session_id) for point in points)
    steps.sort(key=lambda item: item[0]["at"] or "")
    journey = [
        _original_step(point, session_id, number)
        for number, (point, session_id) in enumerate(steps, 1)
    ]
    journey = journey[::-1][:limit]
    first_touch = next((s["firstTouch"] for s in sessions if s["firstTouch"]), None)
    last_touch = next((s["lastTouch"] for s in reversed(sessions) if s["lastTouch"]), None)
    return {
        "fingerprint": user_fingerprint,
        "stage": visitor_stage([{"stage": j.stage} for j in journeys]),
        "firstTouch": first_touch,
        "lastTouch": last_touch,
        "totalSessions": len(sessions),
        "sessions": sessions,
        "journey": journey,
        "totalSteps": len(journey),
    }


def _original_step(point: dict[str, Any], session_id: str, number: int) -> dict[str, Any]:
    """One touchpoint as a row of the original service's journey (its column names)."""
    return {
        "journey_stage": point.get("stage")
        if point.get("step")
        else type_stage(point["type"] or ""),
        "touchpoint": point["type"],
        "sequence_number": number,
        "time_spent_seconds": point["timeSpentSeconds"],
        "entry_method": point.get("entry_method"),
        "traffic_source": point.get("traffic_source"),
        "content_consumed": point.get("content_consumed"),
        "actions_taken": point.get("actions_taken"),
        "stage_entered_at": point["at"],
        "session_id": session_id,
        "page_url": point["page"],
        "explicit": bool(point.get("step")),
    }
