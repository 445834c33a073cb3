"""A visitor's insights (domain/insights.py): scores, what the scorer records, and the JSON
documents of the insights and journey answers. Pure unit tests, no I/O, no event loop."""

from __future__ import annotations

import json
import math
import re
from datetime import UTC, datetime, timedelta, timezone

import attrs
import pytest

from revivatech_actors.config import load_settings
from revivatech_actors.domain.insights import (
    behavior,
    conversion_probability,
    evaluate,
    insights_document,
    journey_document,
    journey_summary,
    latest_session,
    score_record,
    snapshot,
)
from revivatech_actors.domain.profiles import ProfileState
from revivatech_actors.domain.scoring import (
    CHURN,
    ENGAGEMENT,
    LEAD,
    MODEL_TYPES,
    PRICE_SENSITIVITY,
    SEGMENTS,
    ProfileSnapshot,
    Score,
    ScoreRecord,
    score_all,
    segment,
)
from revivatech_actors.storage import StoredJourney, StoredPrediction

SETTINGS = load_settings(None, {}, {}).scoring
NOW = datetime(2026, 11, 10, 12, 0, tzinfo=UTC)
RFC3339_Z = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$")


def days_ago(days: float) -> datetime:
    return NOW - timedelta(days=days)


# One profile per segment (with the default [scoring] settings).
PROFILES = {
    "new": ProfileState("fp-new"),
    "churned": ProfileState(
        "fp-churned",
        total_events=10,
        total_sessions=2,
        first_seen=days_ago(200),
        last_seen=days_ago(100),
        days_active=2,
    ),
    "at-risk": ProfileState(
        "fp-risk",
        total_events=3,
        total_sessions=1,
        first_seen=days_ago(40),
        last_seen=days_ago(40),
        days_active=1,
    ),
    "loyal": ProfileState(
        "fp-loyal",
        total_events=40,
        total_sessions=6,
        total_page_views=30,
        bookings_started=3,
        total_bookings=3,
        total_value=300.0,
        first_seen=days_ago(20),
        last_seen=days_ago(1 / 24),
        last_booking_at=days_ago(2),
        days_active=8,
        total_session_seconds=3000.0,
        event_counts={"page_view": 30, "booking_completed": 3, "pricing_viewed": 4},
    ),
    "engaged": ProfileState(
        "fp-engaged",
        total_events=60,
        total_sessions=10,
        total_page_views=50,
        first_seen=days_ago(9),
        last_seen=days_ago(1 / 24),
        days_active=10,
        total_session_seconds=6000.0,
        event_counts={"page_view": 50, "quote_requested": 1},
    ),
}


def rich_state(**changes) -> ProfileState:
    state = ProfileState(
        "fp-rich",
        total_events=25,
        total_sessions=4,
        total_page_views=14,
        bookings_started=3,
        total_bookings=2,
        total_value=123.456,
        first_seen=datetime(2026, 10, 1, 8, 30, 15, 123456, tzinfo=UTC),
        last_seen=datetime(2026, 11, 9, 23, 0, tzinfo=timezone(timedelta(hours=2))),
        last_booking_at=datetime(2026, 11, 5, 10, 0, tzinfo=UTC),
        total_session_seconds=1000.0,
        days_active=6,
        event_counts={
            "page_view": 14,
            "pricing_viewed": 3,
            "coupon_applied": 1,
            "booking_completed": 2,
            "booking_started": 3,
            "quote_requested": 2,
        },
        segment="new",
        scores={},
        updated_at=days_ago(1),
    )
    return attrs.evolve(state, **changes)


# --- snapshot ------------------------------------------------------------------------------------

SNAPSHOT_FIELDS = [
    "total_events",
    "total_sessions",
    "total_page_views",
    "bookings_started",
    "total_bookings",
    "total_value",
    "first_seen",
    "last_seen",
    "last_booking_at",
    "total_session_seconds",
    "days_active",
]


@pytest.mark.parametrize(
    "state", [rich_state(), *PROFILES.values()], ids=lambda s: s.user_fingerprint
)
def test_snapshot_copies_the_profile(state):
    p = snapshot(state)
    assert isinstance(p, ProfileSnapshot)
    for name in SNAPSHOT_FIELDS:
        assert getattr(p, name) == getattr(state, name), name
    assert dict(p.event_counts) == state.event_counts


def test_snapshot_does_not_share_event_counts():
    state = rich_state()
    p = snapshot(state)
    state.event_counts["pricing_viewed"] = 100
    assert p.event_counts["pricing_viewed"] == 3


# --- evaluate ------------------------------------------------------------------------------------


@pytest.mark.parametrize(("expected", "state"), [*PROFILES.items(), ("loyal", rich_state())])
def test_evaluate_scores_every_model_and_segments(expected, state):
    scores, seg = evaluate(state, NOW, SETTINGS)
    assert tuple(scores) == MODEL_TYPES
    for model, score in scores.items():
        assert isinstance(score, Score)
        assert score.model_type == model
        assert 0.0 <= score.value <= 100.0
        assert 0.0 <= score.confidence <= 1.0
    assert seg in SEGMENTS
    assert seg == expected


@pytest.mark.parametrize(
    "state", [rich_state(), *PROFILES.values()], ids=lambda s: s.user_fingerprint
)
def test_evaluate_is_score_all_and_segment_of_the_snapshot(state):
    scores, seg = evaluate(state, NOW, SETTINGS)
    p = snapshot(state)
    assert scores == score_all(p, NOW, SETTINGS)
    assert seg == segment(p, scores, NOW, SETTINGS)


def test_evaluate_of_an_empty_profile_is_zero_and_new():
    scores, seg = evaluate(ProfileState("x"), NOW, SETTINGS)
    assert {m: s.value for m, s in scores.items()} == dict.fromkeys(MODEL_TYPES, 0.0)
    assert {m: s.confidence for m, s in scores.items()} == dict.fromkeys(MODEL_TYPES, 0.0)
    assert seg == "new"


def test_evaluate_ignores_stored_segment_and_scores():
    state = rich_state()
    stale = rich_state(segment="churned", scores=dict.fromkeys(MODEL_TYPES, 99.0))
    assert evaluate(stale, NOW, SETTINGS) == evaluate(state, NOW, SETTINGS)


def test_evaluate_depends_on_now():
    state = PROFILES["engaged"]
    assert evaluate(state, NOW, SETTINGS)[1] == "engaged"
    assert evaluate(state, NOW + timedelta(days=90), SETTINGS)[1] == "churned"


# --- score_record --------------------------------------------------------------------------------


def current_values(state: ProfileState, settings=SETTINGS) -> dict[str, float]:
    return {m: s.value for m, s in evaluate(state, NOW, settings)[0].items()}


@pytest.mark.parametrize(
    "state", [rich_state(), *PROFILES.values()], ids=lambda s: s.user_fingerprint
)
def test_first_scoring_records_every_model(state):
    record = score_record(state, NOW, SETTINGS)
    scores, seg = evaluate(state, NOW, SETTINGS)
    assert isinstance(record, ScoreRecord)
    assert record.user_fingerprint == state.user_fingerprint
    assert record.scored_at == NOW
    assert record.segment == seg
    assert tuple(s.model_type for s in record.recorded) == MODEL_TYPES
    assert record.recorded == tuple(scores.values())


@pytest.mark.parametrize("threshold", [0.0, 1.0, 5.0])
@pytest.mark.parametrize(
    "state", [rich_state(), *PROFILES.values()], ids=lambda s: s.user_fingerprint
)
def test_unchanged_scores_record_nothing(state, threshold):
    settings = attrs.evolve(SETTINGS, record_threshold=threshold)
    same = attrs.evolve(state, scores=current_values(state, settings))
    record = score_record(same, NOW, settings)
    assert record.recorded == ()
    assert record.segment == evaluate(state, NOW, settings)[1]
    assert record.scored_at == NOW


@pytest.mark.parametrize(
    ("threshold", "move", "recorded"),
    [
        (1.0, 0.0, False),
        (1.0, 0.5, False),
        (1.0, 0.99, False),
        (1.0, 1.0, True),
        (1.0, 1.5, True),
        (1.0, -0.5, False),
        (1.0, -1.0, True),
        (5.0, 4.99, False),
        (5.0, 5.0, True),
        (5.0, -20.0, True),
        (0.0, 0.0, False),
        (0.0, 0.01, True),
    ],
)
def test_a_move_is_recorded_at_or_above_the_threshold(threshold, move, recorded):
    settings = attrs.evolve(SETTINGS, record_threshold=threshold)
    state = rich_state()
    values = current_values(state, settings)
    # only the lead score was last recorded at a different value
    old = dict(values, **{LEAD: values[LEAD] - move})
    record = score_record(attrs.evolve(state, scores=old), NOW, settings)
    assert [s.model_type for s in record.recorded] == ([LEAD] if recorded else [])
    if recorded:
        assert record.recorded[0].value == values[LEAD]


def test_only_models_without_a_recorded_value_or_that_moved_are_recorded():
    state = rich_state()
    values = current_values(state)
    old = {
        ENGAGEMENT: values[ENGAGEMENT],
        CHURN: values[CHURN] + 30.0,
        PRICE_SENSITIVITY: float("nan"),
    }
    record = score_record(attrs.evolve(state, scores=old), NOW, SETTINGS)
    assert [s.model_type for s in record.recorded] == [LEAD, CHURN, PRICE_SENSITIVITY]


# --- insights_document ---------------------------------------------------------------------------

PREDICTIONS = [
    StoredPrediction(
        model_type=ENGAGEMENT,
        prediction_value=42.5,
        confidence_score=0.8123,
        factors=[{"name": "sessions", "value": 4.0, "contribution": 12.0}],
        created_at=datetime(2026, 11, 9, 10, 0, 0, 123456, tzinfo=UTC),
    ),
    StoredPrediction(
        model_type=CHURN,
        prediction_value=7.0,
        confidence_score=None,
        factors=[],
        created_at=datetime(2026, 11, 8, 1, 2, 3, tzinfo=timezone(timedelta(hours=-5))),
    ),
]

SCORE_NAMES = {
    ENGAGEMENT: "engagement",
    LEAD: "lead",
    CHURN: "churnRisk",
    PRICE_SENSITIVITY: "priceSensitivity",
}


def is_number(value) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def test_insights_document_shape():
    doc = insights_document(rich_state(), PREDICTIONS, NOW, SETTINGS)
    assert list(doc) == [
        "profile",
        "scores",
        "behavior",
        "journey",
        "scoreDetails",
        "predictions",
        "computedAt",
    ]
    assert doc["computedAt"] == "2026-11-10T12:00:00.000Z"
    json.dumps(doc, allow_nan=False)  # JSON-ready as it is


def test_insights_profile_fields():
    state = rich_state()
    profile = insights_document(state, [], NOW, SETTINGS)["profile"]
    _, seg = evaluate(state, NOW, SETTINGS)
    assert profile["fingerprint"] == "fp-rich"
    assert profile["segment"] == seg == "loyal"  # computed now, not the stored "new"
    ints = {
        "totalEvents": 25,
        "totalSessions": 4,
        "totalPageViews": 14,
        "bookingsStarted": 3,
        "totalBookings": 2,
        "daysActive": 6,
    }
    for key, value in ints.items():
        assert profile[key] == value and type(profile[key]) is int, key
    assert profile["totalValue"] == 123.46 and is_number(profile["totalValue"])
    assert profile["firstSeen"] == "2026-10-01T08:30:15.123Z"
    assert profile["lastSeen"] == "2026-11-09T21:00:00.000Z"  # converted to UTC
    assert profile["lastBookingAt"] == "2026-11-05T10:00:00.000Z"
    assert profile["avgSessionSeconds"] == 250.0
    assert profile["pagesPerSession"] == 3.5
    assert profile["eventCounts"] == state.event_counts
    assert profile["eventCounts"] is not state.event_counts


def test_insights_profile_is_json_ready():
    profile = insights_document(rich_state(), [], NOW, SETTINGS)["profile"]
    for key in (
        "fingerprint",
        "totalEvents",
        "totalSessions",
        "totalPageViews",
        "bookingsStarted",
        "totalBookings",
        "totalValue",
        "firstSeen",
        "lastSeen",
        "segment",
    ):
        assert key in profile, key
    for key in (
        "totalEvents",
        "totalSessions",
        "totalPageViews",
        "bookingsStarted",
        "totalBookings",
        "daysActive",
    ):
        assert type(profile[key]) is int, key
    for key in ("totalValue", "avgSessionSeconds", "pagesPerSession"):
        assert is_number(profile[key]), key
    for key in ("firstSeen", "lastSeen", "lastBookingAt"):
        assert isinstance(profile[key], str) and RFC3339_Z.match(profile[key]), key
    assert isinstance(profile["fingerprint"], str) and isinstance(profile["segment"], str)


def test_insights_profile_of_an_empty_state():
    profile = insights_document(ProfileState("fp-0"), [], NOW, SETTINGS)["profile"]
    assert profile == {
        "fingerprint": "fp-0",
        "totalEvents": 0,
        "totalSessions": 0,
        "totalPageViews": 0,
        "bookingsStarted": 0,
        "totalBookings": 0,
        "totalValue": 0.0,
        "firstSeen": None,
        "lastSeen": None,
        "lastBookingAt": None,
        "segment": "new",
        "daysActive": 0,
        "avgSessionSeconds": 0.0,
        "pagesPerSession": 0.0,
        "eventCounts": {},
        "sessionId": None,
        "customerId": None,
    }


def test_insights_profile_with_negative_sessions_shows_zero():
    profile = insights_document(rich_state(total_sessions=-2), [], NOW, SETTINGS)["profile"]
    assert (profile["totalSessions"], profile["avgSessionSeconds"], profile["pagesPerSession"]) == (
        0,
        0.0,
        0.0,
    )


@pytest.mark.parametrize(
    "state", [rich_state(), *PROFILES.values()], ids=lambda s: s.user_fingerprint
)
def test_insights_scores(state):
    doc = insights_document(state, [], NOW, SETTINGS)
    scores, _ = evaluate(state, NOW, SETTINGS)
    assert list(doc["scores"]) == [
        "engagement",
        "lead",
        "churnRisk",
        "priceSensitivity",
        "conversionProbability",
    ]
    assert doc["scores"] == {
        **{SCORE_NAMES[m]: scores[m].value for m in MODEL_TYPES},
        "conversionProbability": round(scores[LEAD].value / 100, 4),
    }
    for value in doc["scores"].values():
        assert is_number(value) and 0 <= value <= 100
    assert 0 <= doc["scores"]["conversionProbability"] <= 1
    assert list(doc["scoreDetails"]) == list(doc["scores"])[:4]
    for model in MODEL_TYPES:
        detail = doc["scoreDetails"][SCORE_NAMES[model]]
        assert detail["value"] == scores[model].value == doc["scores"][SCORE_NAMES[model]]
        assert detail["confidence"] == scores[model].confidence
        assert detail["modelVersion"] == "fixed"
        assert detail["factors"] == [
            {"name": f.name, "value": f.value, "contribution": f.contribution}
            for f in scores[model].factors
        ]
        assert sum(f["contribution"] for f in detail["factors"]) == pytest.approx(
            detail["value"], abs=0.011
        )


def test_insights_predictions():
    doc = insights_document(rich_state(), PREDICTIONS, NOW, SETTINGS)
    assert doc["predictions"] == [
        {
            "model_type": ENGAGEMENT,
            "prediction_value": 42.5,
            "confidence_score": 0.8123,
            "factors": [{"name": "sessions", "value": 4.0, "contribution": 12.0}],
            "created_at": "2026-11-09T10:00:00.123Z",
            "model_version": "fixed",
        },
        {
            "model_type": CHURN,
            "prediction_value": 7.0,
            "confidence_score": None,
            "factors": [],
            "created_at": "2026-11-08T06:02:03.000Z",
            "model_version": "fixed",
        },
    ]


def test_insights_without_predictions():
    assert insights_document(rich_state(), [], NOW, SETTINGS)["predictions"] == []


def test_insights_document_computed_at_in_another_zone():
    now = datetime(2026, 11, 10, 14, 0, 0, 999999, tzinfo=timezone(timedelta(hours=2)))
    assert (
        insights_document(rich_state(), [], now, SETTINGS)["computedAt"]
        == "2026-11-10T12:00:00.999Z"
    )


# --- journey_document ----------------------------------------------------------------------------


def journey(
    session_id, stage, first=None, last=None, *, start="2026-01-02T03:00:00+00:00", touchpoints=()
):
    started = datetime.fromisoformat(start)
    return StoredJourney(
        session_id, list(touchpoints), stage, first, last, started, started + timedelta(minutes=30)
    )


def point(kind: str, at: str | None, page: str | None = "https://revivatech.example/", **extra):
    return {"type": kind, "page": page, "at": at, **extra}


def test_journey_document_of_no_sessions():
    assert journey_document("fp", []) == {
        "fingerprint": "fp",
        "stage": None,
        "firstTouch": None,
        "lastTouch": None,
        "totalSessions": 0,
        "sessions": [],
        "journey": [],
        "totalSteps": 0,
    }


def test_journey_document_session_fields():
    j = journey(
        "s1",
        "decision",
        "google.com",
        "news",
        touchpoints=[
            point(
                "quote_requested",
                "2026-01-02T03:10:00.5+00:00",
                page="https://revivatech.example/quote",
            ),
            point("page_view", "2026-01-02T03:04:05.123000+00:00"),
            point("checkout", "2026-01-02T03:05:00+00:00", step=True),
        ],
    )
    doc = journey_document("fp", [j])
    assert doc["fingerprint"] == "fp"
    assert doc["totalSessions"] == 1
    assert doc["stage"] == "decision"
    assert doc["sessions"] == [
        {
            "sessionId": "s1",
            "stage": "decision",
            "startedAt": "2026-01-02T03:00:00.000Z",
            "lastActivityAt": "2026-01-02T03:30:00.000Z",
            "firstTouch": "google.com",
            "lastTouch": "news",
            "touchpoints": [
                {
                    "type": "page_view",
                    "page": "https://revivatech.example/",
                    "at": "2026-01-02T03:04:05.123Z",
                    "timeSpentSeconds": 54.877,
                },
                {
                    "type": "checkout",
                    "page": "https://revivatech.example/",
                    "at": "2026-01-02T03:05:00.000Z",
                    "step": True,
                    "timeSpentSeconds": 300.5,
                },
                {
                    "type": "quote_requested",
                    "page": "https://revivatech.example/quote",
                    "at": "2026-01-02T03:10:00.500Z",
                    "timeSpentSeconds": None,
                },
            ],
        }
    ]
    assert doc["totalSteps"] == 3
    assert [
        (s["touchpoint"], s["sequence_number"], s["journey_stage"]) for s in doc["journey"]
    ] == [("quote_requested", 3, "decision"), ("checkout", 2, None), ("page_view", 1, "awareness")]
    json.dumps(doc, allow_nan=False)


def test_journey_document_shows_a_steps_own_time_and_stage_and_honours_limit():
    j = journey(
        "s1",
        "awareness",
        touchpoints=[
            point("page_view", "2026-01-02T03:00:00+00:00"),
            point(
                "booking_form",
                "2026-01-02T03:01:00+00:00",
                step=True,
                stage="conversion",
                time_spent_seconds=12.5,
                entry_method="search",
                content_consumed={"pages": 2},
            ),
            point("page_view", "2026-01-02T03:05:00+00:00"),
        ],
    )
    doc = journey_document("fp", [j], limit=2)
    step = doc["sessions"][0]["touchpoints"][1]
    assert step == {
        "type": "booking_form",
        "page": "https://revivatech.example/",
        "at": "2026-01-02T03:01:00.000Z",
        "step": True,
        "stage": "conversion",
        "time_spent_seconds": 12.5,
        "entry_method": "search",
        "content_consumed": {"pages": 2},
        "timeSpentSeconds": 12.5,
    }
    assert doc["totalSteps"] == 2
    assert doc["journey"][1] == {
        "journey_stage": "conversion",
        "touchpoint": "booking_form",
        "sequence_number": 2,
        "time_spent_seconds": 12.5,
        "entry_method": "search",
        "traffic_source": None,
        "content_consumed": {"pages": 2},
        "actions_taken": None,
        "stage_entered_at": "2026-01-02T03:01:00.000Z",
        "session_id": "s1",
        "page_url": "https://revivatech.example/",
        "explicit": True,
    }


@pytest.mark.parametrize(
    ("at", "shown"),
    [
        ("2026-01-02T03:04:05.123000+00:00", "2026-01-02T03:04:05.123Z"),
        ("2026-01-02T03:04:05.123456+00:00", "2026-01-02T03:04:05.123Z"),
        ("2026-01-02T03:04:05+00:00", "2026-01-02T03:04:05.000Z"),
        ("2026-01-02T03:04:05.1Z", "2026-01-02T03:04:05.100Z"),
        ("2026-01-02T05:04:05.123+02:00", "2026-01-02T03:04:05.123Z"),
        ("2026-01-01T22:04:05-05:00", "2026-01-02T03:04:05.000Z"),
    ],
)
def test_journey_touchpoint_times_are_normalised(at, shown):
    doc = journey_document("fp", [journey("s1", "awareness", touchpoints=[point("page_view", at)])])
    assert doc["sessions"][0]["touchpoints"][0]["at"] == shown


def test_journey_touchpoints_sort_by_utc_time_not_by_text():
    # 03:30+02:00 is 01:30Z, before 02:00Z, though its text sorts after
    j = journey(
        "s1",
        "awareness",
        touchpoints=[
            point("b", "2026-01-02T02:00:00+00:00"),
            point("a", "2026-01-02T03:30:00+02:00"),
            point("c", "2026-01-02T02:00:00.001+00:00"),
        ],
    )
    points = journey_document("fp", [j])["sessions"][0]["touchpoints"]
    assert [(p["type"], p["at"]) for p in points] == [
        ("a", "2026-01-02T01:30:00.000Z"),
        ("b", "2026-01-02T02:00:00.000Z"),
        ("c", "2026-01-02T02:00:00.001Z"),
    ]


def test_journey_touchpoint_step_flag_only_when_set_and_extra_keys_dropped():
    j = journey(
        "s1",
        "awareness",
        touchpoints=[
            point("x", "2026-01-02T03:00:00+00:00", step=False),
            point("y", "2026-01-02T03:01:00+00:00", step=True, secret="kept out"),
        ],
    )
    points = journey_document("fp", [j])["sessions"][0]["touchpoints"]
    assert points == [
        {
            "type": "x",
            "page": "https://revivatech.example/",
            "at": "2026-01-02T03:00:00.000Z",
            "timeSpentSeconds": 60.0,
        },
        {
            "type": "y",
            "page": "https://revivatech.example/",
            "at": "2026-01-02T03:01:00.000Z",
            "step": True,
            "timeSpentSeconds": None,
        },
    ]


def test_journey_touchpoint_without_a_time_sorts_first():
    j = journey(
        "s1",
        "awareness",
        touchpoints=[point("late", "2026-01-02T03:00:00+00:00"), point("none", None)],
    )
    points = journey_document("fp", [j])["sessions"][0]["touchpoints"]
    assert [(p["type"], p["at"]) for p in points] == [
        ("none", None),
        ("late", "2026-01-02T03:00:00.000Z"),
    ]


def test_journey_sessions_keep_the_given_order():
    journeys = [
        journey("b", "awareness", start="2026-01-03T00:00:00+00:00"),
        journey("a", "consideration", start="2026-01-01T00:00:00+00:00"),
        journey("c", "decision", start="2026-01-02T00:00:00+00:00"),
    ]
    doc = journey_document("fp", journeys)
    assert [s["sessionId"] for s in doc["sessions"]] == ["b", "a", "c"]
    assert [s["startedAt"] for s in doc["sessions"]] == [
        "2026-01-03T00:00:00.000Z",
        "2026-01-01T00:00:00.000Z",
        "2026-01-02T00:00:00.000Z",
    ]
    assert doc["totalSessions"] == 3
    assert doc["stage"] == "decision"  # the last given session's stage


@pytest.mark.parametrize(
    ("sources", "first", "last"),
    [
        (
            [(None, None), ("google.com", "bing.com"), ("mail", "news"), (None, None)],
            "google.com",
            "news",
        ),
        ([("a", "b")], "a", "b"),
        ([(None, None), (None, None)], None, None),
        ([(None, "late-only"), ("first-only", None)], "first-only", "late-only"),
        ([("x", "y"), (None, None), (None, "z")], "x", "z"),
        ([("", ""), ("real", "real2"), ("", "")], "real", "real2"),  # empty text is no source
    ],
)
def test_journey_first_and_last_touch(sources, first, last):
    journeys = [
        journey(f"s{i}", "awareness", fst, lst, start=f"2026-01-0{i + 1}T00:00:00+00:00")
        for i, (fst, lst) in enumerate(sources)
    ]
    doc = journey_document("fp", journeys)
    assert (doc["firstTouch"], doc["lastTouch"]) == (first, last)
    assert [(s["firstTouch"], s["lastTouch"]) for s in doc["sessions"]] == sources


@pytest.mark.parametrize(
    ("stages", "expected"),
    [
        (["awareness"], "awareness"),
        (["booking"], "booking"),
        (["booking", "awareness"], "retention"),
        (["booking", "decision", "consideration"], "retention"),
        (["decision", "booking"], "booking"),
        (["booking", "retention", "booking"], "booking"),
        (["consideration", "awareness"], "awareness"),
        (["decision", None], "awareness"),
        (["booking", None], "retention"),
    ],
)
def test_journey_stage_is_the_visitor_stage(stages, expected):
    journeys = [
        journey(f"s{i}", stage, start=f"2026-01-0{i + 1}T00:00:00+00:00")
        for i, stage in enumerate(stages)
    ]
    doc = journey_document("fp", journeys)
    assert doc["stage"] == expected
    assert [
        s["stage"] for s in doc["sessions"]
    ] == stages  # each session shows its own stored stage


def test_journey_document_times_in_other_zones():
    j = StoredJourney(
        "s1",
        [],
        "awareness",
        None,
        None,
        datetime(2026, 1, 2, 5, 0, tzinfo=timezone(timedelta(hours=2))),
        datetime(2026, 1, 2, 3, 15, 30, 250000, tzinfo=UTC),
    )
    session = journey_document("fp", [j])["sessions"][0]
    assert (session["startedAt"], session["lastActivityAt"]) == (
        "2026-01-02T03:00:00.000Z",
        "2026-01-02T03:15:30.250Z",
    )
    assert session["touchpoints"] == []


# --- the original's behavior, journey, sessionId, customerId, conversionProbability ------------


def session(
    session_id, stage="awareness", *, start="2026-11-01T10:00:00+00:00", minutes=30, kinds=()
):
    started = datetime.fromisoformat(start)
    points = [point(kind, start) for kind in kinds]
    return StoredJourney(
        session_id, points, stage, None, None, started, started + timedelta(minutes=minutes)
    )


@pytest.mark.parametrize(
    ("lead", "share"), [(0.0, 0.0), (37.46, 0.3746), (100.0, 1.0), (123.0, 1.0), (-1.0, 0.0)]
)
def test_conversion_probability_is_the_lead_score_as_a_share(lead, share):
    assert conversion_probability(lead) == share


def test_latest_session_is_the_one_of_the_latest_activity():
    assert latest_session([]) is None
    early_long = session("s1", start="2026-11-01T10:00:00+00:00", minutes=600)  # active until 20:00
    later_short = session("s2", start="2026-11-01T12:00:00+00:00", minutes=5)
    assert latest_session([early_long, later_short]) == "s1"
    tie = session(
        "s3", start="2026-11-01T19:00:00+00:00", minutes=60
    )  # also until 20:00, started later
    assert latest_session([early_long, tie, later_short]) == "s3"


def test_behavior_averages_and_single_page_sessions():
    state = rich_state()  # 4 sessions, 14 page views, 1000 s of sessions
    journeys = [
        session("a", kinds=["page_view"]),  # bounced
        session("b", kinds=["page_view", "scroll", "click"]),  # one page: bounced
        session("c", kinds=["page_view", "pageview", "booking_started"]),  # two pages
        session("d", kinds=["journey_step"]),  # no page view: not counted
    ]
    shown = behavior(state, journeys, max_touchpoints=500)
    assert shown == {
        "avgSessionDuration": 250.0,
        "pagesPerSession": 3.5,
        "bounceRate": 0.6667,
        "preferredDevice": None,
    }
    devices = attrs.evolve(state, device_counts={"mobile": 3, "desktop": 5, "tablet": 5})
    assert (
        behavior(devices, journeys, max_touchpoints=500)["preferredDevice"] == "desktop"
    )  # ties: alphabetical


def test_a_session_cut_at_max_touchpoints_is_not_a_bounce():
    cut = session("a", kinds=["page_view"] + ["scroll"] * 4)
    assert behavior(rich_state(), [cut], max_touchpoints=5)["bounceRate"] == 0.0
    assert behavior(rich_state(), [cut], max_touchpoints=6)["bounceRate"] == 1.0


def test_an_explicit_step_named_page_view_is_not_a_page_view():
    step = StoredJourney(
        "s", [point("page_view", None, step=True)], "awareness", None, None, NOW, NOW
    )
    assert behavior(rich_state(), [step], max_touchpoints=500)["bounceRate"] is None


def test_behavior_without_sessions():
    assert behavior(ProfileState("fp"), [], max_touchpoints=500) == {
        "avgSessionDuration": 0.0,
        "pagesPerSession": 0.0,
        "bounceRate": None,
        "preferredDevice": None,
    }


def test_journey_summary_stages_most_recent_first():
    journeys = [
        session("s1", "decision", start="2026-11-01T10:00:00+00:00"),
        session("s2", "booking", start="2026-11-02T10:00:00+00:00"),
        session("s3", "awareness", start="2026-11-03T10:00:00+00:00"),
        session("s4", "decision", start="2026-11-04T10:00:00+00:00"),
        session("s5", None, start="2026-11-05T10:00:00+00:00"),
    ]
    summary = journey_summary(journeys)
    assert summary["currentStage"] == "retention"  # a session after a booking, as GET /journey says
    assert summary["stages"] == [
        {"journey_stage": "awareness", "visits": 2, "lastActivityAt": "2026-11-05T10:30:00.000Z"},
        {"journey_stage": "decision", "visits": 2, "lastActivityAt": "2026-11-04T10:30:00.000Z"},
        {"journey_stage": "booking", "visits": 1, "lastActivityAt": "2026-11-02T10:30:00.000Z"},
    ]
    assert journey_summary([]) == {"currentStage": "unknown", "stages": []}


def test_insights_document_carries_the_originals_fields():
    journeys = [
        session("s1", "decision", kinds=["page_view", "page_view"]),
        session("s2", "consideration", start="2026-11-02T10:00:00+00:00", kinds=["page_view"]),
    ]
    state = attrs.evolve(rich_state(), customer_id="user-42")
    doc = insights_document(state, [], NOW, SETTINGS, journeys=journeys)
    assert (doc["profile"]["sessionId"], doc["profile"]["customerId"]) == ("s2", "user-42")
    assert doc["behavior"]["bounceRate"] == 0.5 and doc["behavior"]["preferredDevice"] is None
    assert doc["journey"]["currentStage"] == "consideration"
    assert [s["journey_stage"] for s in doc["journey"]["stages"]] == ["consideration", "decision"]
    assert doc["scores"]["conversionProbability"] == round(doc["scores"]["lead"] / 100, 4)
    json.dumps(doc, allow_nan=False)
