"""Scores and segments: pure functions over a profile snapshot (no event loop, no I/O)."""

from __future__ import annotations

import itertools
import math
from datetime import UTC, datetime, timedelta

import attrs
import orjson
import pytest

from revivatech_actors.config import ConfigError, load_settings
from revivatech_actors.domain.scoring import (
    CHURN,
    ENGAGEMENT,
    LEAD,
    MODEL_TYPES,
    PRICE_SENSITIVITY,
    SEGMENTS,
    Factor,
    ProfileSnapshot,
    Score,
    changed_enough,
    churn_risk,
    days_idle,
    engagement_score,
    lead_score,
    price_sensitivity,
    score_all,
    segment,
    typical_gap_days,
)

S = load_settings(environ={}).scoring
NOW = datetime(2025, 7, 16, 12, 0, tzinfo=UTC)
DAY = timedelta(days=1)
MODELS = {
    ENGAGEMENT: engagement_score,
    LEAD: lead_score,
    CHURN: churn_risk,
    PRICE_SENSITIVITY: price_sensitivity,
}


def visitor(*, idle_days: float = 0.0, span_days: float | None = None, **fields) -> ProfileSnapshot:
    """A profile last seen ``idle_days`` ago and first seen ``span_days`` before that."""
    last = NOW - timedelta(days=idle_days)
    span = span_days if span_days is not None else max(0.0, fields.get("days_active", 1) - 1)
    fields.setdefault("first_seen", last - timedelta(days=span))
    fields.setdefault("last_seen", last)
    return ProfileSnapshot(**fields)


FIRST_VISIT = visitor(
    total_events=1,
    total_sessions=1,
    total_page_views=1,
    days_active=1,
    event_counts={"page_view": 1},
)


def mid_booking(idle_days: float = 2 / 1440) -> ProfileSnapshot:
    """A visitor on their third active day in 5 days, who requested a quote and started a
    booking."""
    return visitor(
        idle_days=idle_days,
        span_days=5,
        total_events=23,
        total_sessions=3,
        total_page_views=14,
        bookings_started=1,
        total_session_seconds=3 * 420,
        days_active=3,
        event_counts={
            "page_view": 14,
            "service_viewed": 4,
            "pricing_viewed": 2,
            "price_check": 1,
            "quote_requested": 1,
            "booking_started": 1,
        },
    )


MID_BOOKING = mid_booking()
LOYAL = visitor(
    idle_days=4,
    span_days=296,
    total_events=60,
    total_sessions=9,
    total_page_views=38,
    bookings_started=3,
    total_bookings=3,
    total_value=540.0,
    last_booking_at=NOW - 40 * DAY,
    total_session_seconds=9 * 300,
    days_active=9,
    event_counts={
        "page_view": 38,
        "service_viewed": 6,
        "pricing_viewed": 3,
        "booking_started": 3,
        "booking_completed": 3,
        "quote_requested": 2,
        "contact_clicked": 1,
    },
)
IDLE_90 = visitor(
    idle_days=90,
    span_days=10,
    total_events=12,
    total_sessions=2,
    total_page_views=8,
    total_session_seconds=2 * 240,
    days_active=2,
    event_counts={"page_view": 8, "service_viewed": 2, "pricing_viewed": 2},
)
BARGAIN_HUNTER = visitor(
    idle_days=1,
    span_days=20,
    total_events=20,
    total_sessions=4,
    total_page_views=8,
    bookings_started=3,
    total_bookings=1,
    total_value=35.0,
    last_booking_at=NOW - 10 * DAY,
    days_active=4,
    event_counts={
        "page_view": 8,
        "pricing_viewed": 4,
        "price_check": 2,
        "coupon_applied": 1,
        "discount_viewed": 2,
        "booking_abandoned": 2,
        "booking_started": 3,
        "booking_completed": 1,
    },
)
EMPTY = ProfileSnapshot()

# Odd input that must never crash: negative, NaN, None, infinite and enormous values, naive and
# future datetimes, epoch numbers (also negative and out of range), times missing with events.
ODD = [
    ProfileSnapshot(
        total_events=-5,
        total_sessions=-1,
        total_page_views=-3,
        total_value=-100.0,
        total_session_seconds=-60.0,
        days_active=-2,
        last_seen=NOW,
    ),
    ProfileSnapshot(
        total_events=float("nan"),
        total_sessions=None,
        total_page_views=float("inf"),
        bookings_started=float("-inf"),
        event_counts={"price_check": float("nan"), "coupon_applied": None},
    ),
    ProfileSnapshot(
        total_events=10**400,
        total_sessions=10**30,
        total_page_views=10**300,
        bookings_started=10**20,
        total_bookings=10**19,
        total_value=1e300,
        total_session_seconds=1e308,
        days_active=10**12,
        event_counts={
            t: 10**50
            for t in (
                "pricing_viewed",
                "coupon_applied",
                "booking_abandoned",
                "quote_requested",
                "contact_clicked",
                "service_viewed",
            )
        },
        first_seen=datetime.min.replace(tzinfo=UTC),
        last_seen=NOW,
        last_booking_at=NOW,
    ),
    ProfileSnapshot(
        total_events=3, first_seen=datetime(2025, 1, 1), last_seen=datetime(2025, 7, 1)
    ),  # naive
    ProfileSnapshot(
        total_events=3,
        first_seen=NOW + 400 * DAY,
        last_seen=NOW + 500 * DAY,
        last_booking_at=NOW + 30 * DAY,
        total_bookings=1,
        days_active=2,
    ),  # future (clock skew)
    ProfileSnapshot(
        total_events=3, first_seen=-1e12, last_seen=-86400.0, last_booking_at=1e30
    ),  # epoch numbers
    ProfileSnapshot(total_events=7, total_sessions=2, days_active=3),  # events without times
    ProfileSnapshot(total_events=2, first_seen=NOW - 30 * DAY, last_seen=None),  # last_seen missing
    ProfileSnapshot(
        total_events=4, days_active=5, first_seen=NOW, last_seen=NOW - 10 * DAY
    ),  # last before first
    ProfileSnapshot(event_counts=None),
]
PROFILES = [EMPTY, FIRST_VISIT, MID_BOOKING, LOYAL, IDLE_90, BARGAIN_HUNTER, *ODD]


def total(score: Score) -> float:
    return math.fsum(f.contribution for f in score.factors)


def factor(score: Score, name: str) -> Factor:
    (found,) = [f for f in score.factors if f.name == name]
    return found


# --- invariants ----------------------------------------------------------------------------------


@pytest.mark.parametrize("profile", PROFILES)
def test_every_score_is_bounded_rounded_explained_and_numeric(profile):
    scores = score_all(profile, NOW, S)
    assert list(scores) == list(MODEL_TYPES)
    for model_type, score in scores.items():
        assert score.model_type == model_type
        assert type(score.value) is float and type(score.confidence) is float
        assert 0.0 <= score.value <= 100.0 and 0.0 <= score.confidence <= 1.0
        assert score.value == round(score.value, 2) and score.confidence == round(
            score.confidence, 4
        )
        assert all(type(f.value) is float and type(f.contribution) is float for f in score.factors)
        assert all(math.isfinite(f.value) and math.isfinite(f.contribution) for f in score.factors)
        assert abs(total(score) - score.value) <= 0.01, score
        assert "clamped" not in [f.name for f in score.factors]  # default weights sum to 100
    assert segment(profile, scores, NOW, S) in SEGMENTS


def test_numbers_serialize_as_json_numbers_not_strings():
    data = orjson.loads(
        orjson.dumps({k: attrs.asdict(v) for k, v in score_all(MID_BOOKING, NOW, S).items()})
    )
    for score in data.values():
        assert isinstance(score["value"], float) and isinstance(score["confidence"], float)
        assert all(isinstance(f["contribution"], float) for f in score["factors"])


def test_default_weights_of_each_model_sum_to_100():
    for model in ("engagement", "lead", "churn", "price_sensitivity"):
        values = attrs.asdict(getattr(S, model))
        weights = [v for k, v in values.items() if k.endswith("_weight")]
        assert math.fsum(weights) == 100.0, model


@pytest.mark.parametrize("profile", [LOYAL, MID_BOOKING])
def test_factors_are_listed_in_a_fixed_order_even_when_zero(profile):
    names = {m: [f.name for f in s.factors] for m, s in score_all(profile, NOW, S).items()}
    assert names == {m: [f.name for f in s.factors] for m, s in score_all(EMPTY, NOW, S).items()}
    assert names[ENGAGEMENT] == [
        "sessions",
        "pages_per_session",
        "avg_session_seconds",
        "days_active",
        "recency",
    ]
    assert names[LEAD] == [
        "open_bookings",
        "quotes_requested",
        "contacts",
        "pricing_views",
        "service_views",
        "return_visits",
        "recency",
        "recent_booking",
    ]
    assert names[CHURN] == ["days_absent", "overdue_gaps", "few_bookings"]
    assert names[PRICE_SENSITIVITY] == [
        "pricing_share",
        "discount_events",
        "abandoned_after_pricing",
        "avg_order_value",
    ]


def test_scores_are_deterministic():
    assert score_all(LOYAL, NOW, S) == score_all(LOYAL, NOW, S)


def test_weights_past_100_are_clamped_and_reported_as_a_factor():
    heavy = attrs.evolve(
        S,
        engagement=attrs.evolve(S.engagement, sessions_weight=80.0, pages_per_session_weight=80.0),
    )
    score = engagement_score(LOYAL, NOW, heavy)
    assert score.value == 100.0
    clamped = score.factors[-1]
    assert clamped.name == "clamped" and clamped.value > 100.0 and clamped.contribution < 0.0
    assert abs(total(score) - 100.0) <= 0.01


def test_zero_weight_silences_its_factor():
    silent = attrs.evolve(S, engagement=attrs.evolve(S.engagement, sessions_weight=0.0))
    score = engagement_score(LOYAL, NOW, silent)
    assert factor(score, "sessions").contribution == 0.0
    assert score.value < engagement_score(LOYAL, NOW, S).value


# --- edge cases ----------------------------------------------------------------------------------


def test_no_events_scores_zero_with_zero_confidence_and_is_new():
    scores = score_all(EMPTY, NOW, S)
    assert {m: (s.value, s.confidence) for m, s in scores.items()} == {
        m: (0.0, 0.0) for m in MODEL_TYPES
    }
    assert all(f.contribution == 0.0 for s in scores.values() for f in s.factors)
    assert segment(EMPTY, scores, NOW, S) == "new"


def test_one_page_view_is_a_little_engagement_no_lead_low_churn_and_low_confidence():
    scores = score_all(FIRST_VISIT, NOW, S)
    assert 0.0 < scores[ENGAGEMENT].value < 20.0
    assert scores[LEAD].value == 0.0
    assert scores[CHURN].value <= S.churn.few_bookings_weight  # only "no bookings yet"
    assert scores[PRICE_SENSITIVITY].value == 0.0
    assert all(0.0 < s.confidence < 0.25 for s in scores.values())
    assert segment(FIRST_VISIT, scores, NOW, S) == "new"


def test_idle_90_days_high_churn_faded_engagement_and_lead():
    scores = score_all(IDLE_90, NOW, S)
    assert scores[CHURN].value >= 90.0
    assert scores[ENGAGEMENT].value < 10.0
    assert scores[LEAD].value < 1.0
    assert factor(scores[ENGAGEMENT], "recency").contribution < 0.0
    assert segment(IDLE_90, scores, NOW, S) == "churned"


def test_naive_now_is_taken_as_utc_and_a_non_datetime_now_is_refused():
    assert score_all(LOYAL, NOW.replace(tzinfo=None), S) == score_all(LOYAL, NOW, S)
    with pytest.raises(TypeError):
        score_all(LOYAL, "2025-07-16", S)


def test_snapshot_cleans_input_and_is_read_only():
    p = ProfileSnapshot(
        total_events=-3,
        total_value=float("nan"),
        first_seen=datetime(2025, 1, 1),
        event_counts={"price_check": -2, "coupon_applied": 2},
    )
    assert (p.total_events, p.total_value, p.first_seen.tzinfo) == (0.0, 0.0, UTC)
    assert dict(p.event_counts) == {"price_check": 0.0, "coupon_applied": 2.0}
    with pytest.raises(TypeError):
        p.event_counts["price_check"] = 5
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        p.total_events = 5


@pytest.mark.parametrize(
    ("profile", "expected"),
    [
        (EMPTY, None),
        (visitor(idle_days=3), 3.0),
        (ProfileSnapshot(first_seen=NOW - 5 * DAY), 5.0),  # falls back to first_seen
        (ProfileSnapshot(last_seen=NOW + DAY), 0.0),  # a future time counts as just seen
    ],
)
def test_days_idle(profile, expected):
    assert days_idle(profile, NOW) == expected


@pytest.mark.parametrize(
    ("profile", "expected"),
    [
        (FIRST_VISIT, S.churn.default_gap_days),
        (visitor(days_active=11, span_days=100), 10.0),
        (visitor(days_active=5, span_days=0.5), 1.0),  # at least a day
        (ProfileSnapshot(days_active=4), S.churn.default_gap_days),  # no times
    ],
)
def test_typical_gap(profile, expected):
    assert typical_gap_days(profile, S) == expected


# --- monotonicity ---------------------------------------------------------------------------------


def assert_rises(model, profiles, *, strictly=True):
    values = [MODELS[model](p, NOW, S).value for p in profiles]
    pairs = list(itertools.pairwise(values))
    assert all(a < b if strictly else a <= b for a, b in pairs), values
    return values


BASE = dict(
    total_events=10,
    total_sessions=2,
    total_page_views=4,
    total_session_seconds=120.0,
    days_active=2,
    span_days=6,
)


@pytest.mark.parametrize(
    ("label", "profiles"),
    [
        (
            "sessions",
            [
                visitor(**{**BASE, "total_sessions": n, "total_page_views": 2 * n})
                for n in (1, 2, 5, 10)
            ],
        ),
        ("pages per session", [visitor(**{**BASE, "total_page_views": n}) for n in (0, 2, 6, 10)]),
        (
            "session length",
            [visitor(**{**BASE, "total_session_seconds": s}) for s in (0.0, 60.0, 300.0, 1200.0)],
        ),
        ("days active", [visitor(**{**BASE, "days_active": d}) for d in (1, 2, 5, 10)]),
        ("recency", [visitor(**BASE, idle_days=d) for d in (90, 30, 7, 1, 0)]),
    ],
)
def test_engagement_rises_with_activity_and_recency(label, profiles):
    assert_rises(ENGAGEMENT, profiles)


def test_engagement_saturates_at_the_caps():
    full = visitor(
        total_events=500,
        total_sessions=50,
        total_page_views=500,
        total_session_seconds=50 * 3600.0,
        days_active=40,
        span_days=60,
    )
    assert engagement_score(full, NOW, S).value == 100.0


LEAD_BASE = dict(total_events=10, total_sessions=1, total_page_views=5, days_active=1)


def with_counts(base, **counts):
    return visitor(**base, event_counts=counts)


@pytest.mark.parametrize(
    ("label", "profiles"),
    [
        ("booking started", [visitor(**LEAD_BASE), visitor(**LEAD_BASE, bookings_started=1)]),
        ("quote", [with_counts(LEAD_BASE), with_counts(LEAD_BASE, quote_requested=1)]),
        ("contact", [with_counts(LEAD_BASE), with_counts(LEAD_BASE, contact_clicked=1)]),
        (
            "pricing",
            [with_counts(LEAD_BASE, pricing_viewed=n) for n in (0, 1, 2)]
            + [with_counts(LEAD_BASE, pricing_viewed=2, price_check=1)],
        ),
        ("services", [with_counts(LEAD_BASE, service_viewed=n) for n in (0, 1, 3, 5)]),
        (
            "return visits",
            [with_counts({**LEAD_BASE, "total_sessions": n}, quote_requested=1) for n in (1, 2, 3)],
        ),
        (
            "recency",
            [visitor(**LEAD_BASE, bookings_started=1, idle_days=d) for d in (60, 14, 7, 1, 0)],
        ),
    ],
)
def test_lead_rises_with_intent_and_recency(label, profiles):
    assert_rises(LEAD, profiles)


def test_a_completed_booking_closes_the_lead_which_reopens_over_time():
    def customer(booked_days_ago):
        return visitor(
            **LEAD_BASE,
            bookings_started=1,
            total_bookings=1,
            last_booking_at=NOW - booked_days_ago * DAY,
            event_counts={"quote_requested": 1, "pricing_viewed": 3},
        )

    just_booked = lead_score(customer(0), NOW, S)
    assert just_booked.value == 0.0 and factor(just_booked, "open_bookings").value == 0.0
    assert factor(just_booked, "recent_booking").contribution < 0.0
    assert_rises(LEAD, [customer(d) for d in (0, 7, 30, 90, 365)])
    open_lead = visitor(
        **LEAD_BASE, bookings_started=1, event_counts={"quote_requested": 1, "pricing_viewed": 3}
    )
    assert lead_score(customer(365), NOW, S).value < lead_score(open_lead, NOW, S).value


def test_churn_rises_with_days_away():
    values = assert_rises(CHURN, [visitor(**BASE, idle_days=d) for d in (0, 7, 30, 90)])
    assert values[0] <= 25.0 and values[-1] >= 90.0
    loyal = assert_rises(
        CHURN, [attrs.evolve(LOYAL, last_seen=NOW - d * DAY) for d in (0, 7, 30, 90)]
    )
    assert (
        loyal[0] < 5.0 and loyal[-1] >= S.at_risk_churn
    )  # loyalty mitigates, but 90 days idle is still high


def test_churn_rises_as_the_visitor_stays_away_day_by_day():
    assert_rises(CHURN, [visitor(**BASE, idle_days=d) for d in range(0, 120, 3)])


def test_loyalty_lowers_churn():
    values = [
        churn_risk(visitor(**BASE, idle_days=20, total_bookings=n), NOW, S).value
        for n in (0, 1, 2, 5)
    ]
    assert values[0] > values[1] > values[2] == values[3]


def test_churn_judges_absence_against_the_visitors_own_habit():
    daily = visitor(total_events=40, days_active=20, span_days=19, idle_days=10)
    monthly = visitor(total_events=40, days_active=4, span_days=90, idle_days=10)
    assert typical_gap_days(daily, S) == 1.0 and typical_gap_days(monthly, S) == 30.0
    assert churn_risk(daily, NOW, S).value > churn_risk(monthly, NOW, S).value


def hunter(**counts):
    return visitor(total_events=20, total_sessions=2, days_active=2, event_counts=counts)


@pytest.mark.parametrize(
    ("label", "profiles"),
    [
        ("pricing share", [hunter(pricing_viewed=n) for n in (0, 1, 3, 6)]),
        (
            "discounts",
            [hunter(), hunter(discount_viewed=1), hunter(discount_viewed=1, coupon_applied=1)],
        ),
        (
            "abandoned after pricing",
            [hunter(pricing_viewed=2, booking_abandoned=n) for n in (0, 1, 2)],
        ),
        (
            "low order value",
            [
                visitor(total_events=20, total_bookings=2, total_value=v)
                for v in (400.0, 150.0, 80.0, 20.0)
            ],
        ),
    ],
)
def test_price_sensitivity_rises_with_price_evidence(label, profiles):
    assert_rises(PRICE_SENSITIVITY, profiles)


@pytest.mark.parametrize(
    "profile",
    [
        EMPTY,
        FIRST_VISIT,
        visitor(total_events=50, total_sessions=5, total_page_views=50, days_active=5),
        hunter(
            booking_abandoned=3
        ),  # abandonment without having looked at prices is no price evidence
        visitor(
            total_events=5, total_bookings=2, total_value=0.0
        ),  # bookings without a value: no order value
    ],
)
def test_price_sensitivity_is_zero_without_evidence(profile):
    assert price_sensitivity(profile, NOW, S).value == 0.0


def test_bargain_hunter_is_price_sensitive():
    assert price_sensitivity(BARGAIN_HUNTER, NOW, S).value >= 60.0


@pytest.mark.parametrize("model", MODEL_TYPES)
def test_confidence_grows_with_evidence_from_zero(model):
    profiles = [
        visitor(total_events=n, total_sessions=max(1, n // 5), days_active=d, span_days=d)
        for n, d in ((1, 1), (5, 2), (20, 4), (100, 10), (1000, 30))
    ]
    confidences = [MODELS[model](p, NOW, S).confidence for p in [EMPTY, *profiles]]
    assert confidences[0] == 0.0
    assert all(a < b for a, b in itertools.pairwise(confidences)), confidences
    assert confidences[1] < 0.2 and confidences[-1] > 0.95


# --- segments ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("label", "profile", "expected"),
    [
        ("no events", EMPTY, "new"),
        ("first visit", FIRST_VISIT, "new"),
        ("engaged mid-booking", MID_BOOKING, "engaged"),
        ("loyal customer", LOYAL, "loyal"),
        ("idle 90 days", IDLE_90, "churned"),
        (
            "loyal customer idle exactly 60 days",
            attrs.evolve(LOYAL, last_seen=NOW - 60 * DAY),
            "churned",
        ),
        ("loyal customer idle 57 days", attrs.evolve(LOYAL, last_seen=NOW - 57 * DAY), "at-risk"),
        ("loyal customer idle 20 days", attrs.evolve(LOYAL, last_seen=NOW - 20 * DAY), "loyal"),
        ("one-time visitor idle 30 days", visitor(**BASE, idle_days=30), "at-risk"),
        ("occasional visitor seen last week", visitor(**BASE, idle_days=7), "new"),
        ("engaged visitor idle a week", mid_booking(idle_days=7), "new"),
        ("engaged visitor idle 3 weeks", mid_booking(idle_days=21), "at-risk"),
        (
            "weekly loyal customer idle 30 days",
            visitor(idle_days=30, span_days=63, days_active=10, total_events=40, total_bookings=2),
            "at-risk",
        ),
    ],
)
def test_segments(label, profile, expected):
    assert segment(profile, score_all(profile, NOW, S), NOW, S) == expected


def loyal_with_gap(gap_days, idle):
    return visitor(
        idle_days=idle, span_days=8 * gap_days, days_active=9, total_events=60, total_bookings=3
    )


@pytest.mark.parametrize(
    ("gap_days", "warned"), [(1, True), (7, True), (14, True), (30, True), (45, False)]
)
def test_a_loyal_customer_passes_through_at_risk_before_churned(gap_days, warned):
    """Churned is absolute (``churned_after_days``), churn risk is relative to the customer's habit:
    a customer who usually comes back every 45 days is not at risk yet after 59 days, so they go
    straight from loyal to churned (docs/scoring.md)."""
    seen = [
        segment(loyal_with_gap(gap_days, d), {}, NOW, S) for d in range(0, S.churned_after_days + 1)
    ]
    assert seen[0] == "loyal" and seen[-1] == "churned"
    assert ("at-risk" in seen) is warned
    order = [SEGMENTS.index(name) for name in seen]  # never moves back towards "loyal"
    assert order == sorted(order, reverse=True)


def test_segment_takes_plain_values_or_computes_missing_scores():
    assert segment(FIRST_VISIT, {CHURN: 75.0}, NOW, S) == "at-risk"
    assert segment(FIRST_VISIT, {CHURN: 10.0, ENGAGEMENT: 50.0}, NOW, S) == "engaged"
    assert segment(MID_BOOKING, {}, NOW, S) == "engaged"


def test_segment_thresholds_come_from_settings():
    assert segment(IDLE_90, {}, NOW, attrs.evolve(S, churned_after_days=120)) == "at-risk"
    assert segment(MID_BOOKING, {}, NOW, attrs.evolve(S, engaged_min_engagement=90.0)) == "new"
    assert segment(BARGAIN_HUNTER, {}, NOW, attrs.evolve(S, loyal_min_bookings=1)) == "loyal"


# --- recording -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("old", "new", "threshold", "expected"),
    [
        (None, 0.0, 1.0, True),  # a first score is always recorded
        (float("nan"), 5.0, 1.0, True),
        (10.0, 10.0, 1.0, False),
        (10.0, 10.99, 1.0, False),
        (10.0, 11.0, 1.0, True),
        (10.1, 11.1, 1.0, True),  # float noise does not hide a move of exactly 1
        (11.0, 10.0, 1.0, True),  # falling counts too
        (50.0, 47.5, 2.5, True),
        (50.0, 50.0, 0.0, False),  # threshold 0: any change, but never an unchanged value
        (50.0, 50.01, 0.0, True),
    ],
)
def test_changed_enough(old, new, threshold, expected):
    assert changed_enough(old, new, threshold) is expected


# --- configuration -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "text", "problem"),
    [
        ("REVIVATECH_SCORING_LEAD_QUOTES_WEIGHT", "-1", "must be a number >= 0, got -1.0"),
        ("REVIVATECH_SCORING_ENGAGEMENT_SESSIONS_CAP", "0", "must be a number > 0, got 0.0"),
        ("REVIVATECH_SCORING_CHURN_ABSENCE_SCALE_DAYS", "nan", "must be a number > 0, got nan"),
        (
            "REVIVATECH_SCORING_PRICE_SENSITIVITY_REFERENCE_ORDER_VALUE",
            "0",
            "must be a number > 0, got 0.0",
        ),
        (
            "REVIVATECH_SCORING_AT_RISK_CHURN",
            "101",
            "must be a number between 0 and 100, got 101.0",
        ),
        ("REVIVATECH_SCORING_CHURNED_AFTER_DAYS", "0", "must be an integer >= 1, got 0"),
        ("REVIVATECH_SCORING_RECORD_THRESHOLD", "-0.5", "must be a number >= 0, got -0.5"),
    ],
)
def test_impossible_scoring_settings_are_refused(name, text, problem):
    with pytest.raises(ConfigError) as info:
        load_settings(environ={name: text})
    assert info.value.problem == problem and info.value.source == name


def test_scoring_settings_can_be_overridden():
    settings = load_settings(
        environ={
            "REVIVATECH_SCORING_RECORD_THRESHOLD": "2.5",
            "REVIVATECH_SCORING_CHURNED_AFTER_DAYS": "90",
        }
    )
    assert (settings.scoring.record_threshold, settings.scoring.churned_after_days) == (2.5, 90)
    lead = load_settings(environ={"REVIVATECH_SCORING_LEAD_QUOTES_WEIGHT": "5"}).scoring.lead
    assert lead.quotes_weight == 5.0 and lead.quotes_cap == S.lead.quotes_cap
