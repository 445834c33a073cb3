"""Explainable visitor scores and segments (docs/scoring.md). Pure functions, no I/O, no clock.

Every model is a weighted sum of saturating factors, each weight from ``[scoring.<model>]``:

* a factor turns one piece of evidence into a fraction in [0, 1] — ``min(1, x / cap)`` or
  ``1 - exp(-x / scale)`` — and contributes ``weight * fraction`` points;
* engagement and lead are then scaled by recency (``0.5 ** (days idle / half_life)``), and lead
  also by how long ago the last booking closed the previous opportunity. Such a multiplier is
  reported as a factor with a **negative** contribution: the points it took away.

What callers can rely on:

* ``Score.value`` is a float in [0, 100] rounded to 2 decimals; ``Score.confidence`` a float in
  [0, 1] rounded to 4, equal to 0 for a visitor with no evidence and growing with evidence.
* ``sum(f.contribution for f in score.factors)`` equals ``score.value`` within 0.01 (rounding).
  When the raw sum falls outside [0, 100] (only possible when configured weights sum past 100),
  the value is clamped and a last factor ``clamped`` (``value`` = the raw sum, ``contribution`` =
  the points removed, negative) keeps that sum exact.
* Every factor of a model is always listed, in a fixed order, even when it contributes 0.
* Nothing raises on odd input: None, NaN, negative counts and durations count as 0, absurdly
  large ones saturate, naive datetimes are taken as UTC, a ``last_seen`` after ``now`` counts
  as "seen just now", and a missing ``last_seen`` falls back to ``first_seen`` (neither: no
  absence is assumed).
* ``now`` is always a parameter; the same inputs give the same scores.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from types import MappingProxyType
from typing import Any

import attrs

from ..config import ScoringSettings

__all__ = [
    "ABANDON_TYPES",
    "CHURN",
    "CONTACT_TYPES",
    "DISCOUNT_TYPES",
    "ENGAGEMENT",
    "Factor",
    "LEAD",
    "MODEL_TYPES",
    "PRICE_SENSITIVITY",
    "PRICING_TYPES",
    "ProfileSnapshot",
    "QUOTE_TYPES",
    "SCORED_EVENT_TYPES",
    "ScoreRecord",
    "SEGMENTS",
    "SERVICE_TYPES",
    "Score",
    "changed_enough",
    "build_score",
    "churn_risk",
    "days_idle",
    "engagement_score",
    "half_life",
    "lead_score",
    "linear",
    "price_sensitivity",
    "saturating",
    "score_all",
    "segment",
    "typical_gap_days",
]

#: Model types, as stored in ``ml_predictions.model_type``.
ENGAGEMENT = "engagement_scoring"
LEAD = "lead_scoring"
CHURN = "churn_prediction"
PRICE_SENSITIVITY = "price_sensitivity"
MODEL_TYPES = (ENGAGEMENT, LEAD, CHURN, PRICE_SENSITIVITY)

#: Segments, in order of precedence (the first that applies wins; see :func:`segment`).
SEGMENTS = ("churned", "at-risk", "loyal", "engaged", "new")

#: Event types (``event_counts`` keys) each factor counts; a profile must keep these counts.
QUOTE_TYPES = ("quote_requested",)
CONTACT_TYPES = ("contact_clicked",)
PRICING_TYPES = ("pricing_viewed", "price_check")
SERVICE_TYPES = ("service_viewed",)
DISCOUNT_TYPES = ("coupon_applied", "discount_viewed")
ABANDON_TYPES = ("booking_abandoned",)
SCORED_EVENT_TYPES = frozenset(
    QUOTE_TYPES + CONTACT_TYPES + PRICING_TYPES + SERVICE_TYPES + DISCOUNT_TYPES + ABANDON_TYPES
)

#: Counts beyond this are treated as this (keeps every ratio finite; no real visitor gets close).
MAX_COUNT = 1e15
_DAY = 86400.0
_EPSILON = 1e-9


# --- input ---------------------------------------------------------------------------------------


def _number(value: Any) -> float:
    """A count, amount or duration as a finite float in [0, MAX_COUNT]; junk counts as 0."""
    if value is None or isinstance(value, bool):
        return 0.0
    try:
        number = float(value)
    except OverflowError:  # an int too large for a float
        return MAX_COUNT if value > 0 else 0.0
    except (TypeError, ValueError):
        return 0.0
    if math.isnan(number) or number <= 0.0:
        return 0.0
    return min(number, MAX_COUNT)


def _moment(value: Any) -> datetime | None:
    """An aware datetime (naive taken as UTC), or epoch seconds, as an aware datetime; else None."""
    if isinstance(value, datetime):
        return value if value.tzinfo is not None else value.replace(tzinfo=UTC)
    if isinstance(value, int | float) and not isinstance(value, bool):
        try:
            return datetime.fromtimestamp(value, UTC)
        except (OverflowError, OSError, ValueError):
            return None
    return None


def _counts(value: Mapping[str, Any] | None) -> Mapping[str, float]:
    """A read-only copy of ``event_counts`` with every count cleaned by :func:`_number`."""
    items = dict(value or {})
    return MappingProxyType({str(key): _number(count) for key, count in items.items()})


@attrs.frozen(kw_only=True)
class ProfileSnapshot:
    """What the scores read of a visitor's behaviour profile (``user_behavior_profiles``).

    Counts are cumulative since the visitor was first seen. Construction never fails on odd
    values: counts are cleaned (None/NaN/negative → 0), naive datetimes become UTC, and
    ``event_counts`` is copied into a read-only mapping.
    """

    total_events: float = attrs.field(default=0, converter=_number)
    total_sessions: float = attrs.field(default=0, converter=_number)
    total_page_views: float = attrs.field(default=0, converter=_number)
    bookings_started: float = attrs.field(default=0, converter=_number)
    total_bookings: float = attrs.field(default=0, converter=_number)  # completed bookings
    total_value: float = attrs.field(
        default=0.0, converter=_number
    )  # revenue of completed bookings
    first_seen: datetime | None = attrs.field(default=None, converter=_moment)
    last_seen: datetime | None = attrs.field(default=None, converter=_moment)
    last_booking_at: datetime | None = attrs.field(default=None, converter=_moment)
    total_session_seconds: float = attrs.field(default=0.0, converter=_number)
    days_active: float = attrs.field(default=0, converter=_number)  # distinct days with activity
    event_counts: Mapping[str, float] = attrs.field(factory=dict, converter=_counts, hash=False)

    @property
    def has_evidence(self) -> bool:
        """True once anything at all was recorded for this visitor."""
        return self.total_events > 0 or self.last_seen is not None or self.first_seen is not None

    @property
    def sessions(self) -> float:
        """Sessions, at least 1 once the visitor has any events or page views."""
        if self.total_events > 0 or self.total_page_views > 0:
            return max(self.total_sessions, 1.0)
        return self.total_sessions

    @property
    def pages_per_session(self) -> float:
        """Page views per session; 0 without sessions."""
        return _ratio(self.total_page_views, self.sessions)

    @property
    def avg_session_seconds(self) -> float:
        """Average session length in seconds; 0 without sessions."""
        return _ratio(self.total_session_seconds, self.sessions)

    def count(self, types: Iterable[str]) -> float:
        """How many events of any of ``types`` the visitor had."""
        return min(sum(self.event_counts.get(t, 0.0) for t in types), MAX_COUNT)


# --- output --------------------------------------------------------------------------------------


@attrs.frozen
class Factor:
    """One piece of evidence: ``value`` is the evidence in its own unit (a count, days, a share),
    ``contribution`` the points it added to the score (negative: points it took away)."""

    name: str
    value: float
    contribution: float


@attrs.frozen
class Score:
    """A model's result: ``value`` in [0, 100] (2 decimals), ``confidence`` in [0, 1] (4 decimals)
    and the factors whose contributions sum to ``value`` (within 0.01); ``model_version`` names
    the weighting (``fixed``: these formulas; else a learned model's version)."""

    model_type: str
    value: float
    confidence: float
    factors: tuple[Factor, ...]
    model_version: str = "fixed"


# --- transforms ----------------------------------------------------------------------------------


def _ratio(numerator: float, denominator: float) -> float:
    return numerator / denominator if denominator > 0 else 0.0


def linear(x: float, cap: float) -> float:
    """``min(1, x / cap)`` for x >= 0: full at ``cap``."""
    return min(1.0, max(0.0, x) / cap)


def saturating(x: float, scale: float) -> float:
    """``1 - exp(-x / scale)``: 63% at ``scale``, 95% at three times it."""
    return -math.expm1(-max(0.0, x) / scale)


def half_life(days: float, period: float) -> float:
    """``0.5 ** (days / period)``: 1 today, 0.5 after ``period`` days."""
    return 0.5 ** (max(0.0, days) / period)


def _part(name: str, value: float, weight: float, cap: float) -> tuple[str, float, float]:
    """A linear factor: ``weight * min(1, value / cap)`` points."""
    return name, value, weight * linear(value, cap)


def _confidence(evidence: float, scale: float) -> float:
    return round(saturating(evidence, scale), 4) + 0.0


def build_score(model_type: str, parts: list[tuple[str, float, float]], confidence: float) -> Score:
    """A Score from ``(name, value, contribution)`` parts, clamping and rounding as documented."""
    raw = math.fsum(contribution for _, _, contribution in parts)
    value = min(100.0, max(0.0, raw))
    factors = [Factor(name, round(v, 4) + 0.0, round(c, 4) + 0.0) for name, v, c in parts]
    if abs(raw - value) > _EPSILON:
        factors.append(Factor("clamped", round(raw, 4) + 0.0, round(value - raw, 4) + 0.0))
    return Score(model_type, round(value, 2) + 0.0, confidence, tuple(factors))


# --- time ----------------------------------------------------------------------------------------


def _now(now: datetime) -> datetime:
    moment = _moment(now)
    if moment is None:
        raise TypeError(f"now must be a datetime, got {type(now).__name__}")
    return moment


def _days_between(earlier: datetime, later: datetime) -> float:
    """Days from ``earlier`` to ``later``, at least 0."""
    return max(0.0, (later - earlier).total_seconds() / _DAY)


def days_idle(p: ProfileSnapshot, now: datetime) -> float | None:
    """Days since the visitor was last seen (``first_seen`` if ``last_seen`` is missing), at least
    0; None when neither is known."""
    seen = p.last_seen or p.first_seen
    return None if seen is None else _days_between(seen, _now(now))


def typical_gap_days(p: ProfileSnapshot, settings: ScoringSettings) -> float:
    """The visitor's usual gap between active days: the first..last seen span divided by
    ``days_active - 1``, at least 1 day; ``churn.default_gap_days`` with fewer than 2 active
    days."""
    if p.days_active < 2 or p.first_seen is None or p.last_seen is None:
        return settings.churn.default_gap_days
    span = _days_between(p.first_seen, p.last_seen)
    return max(1.0, span / (p.days_active - 1))


# --- models --------------------------------------------------------------------------------------


def _scaled(parts: list[tuple[str, float, float]], steps: list[tuple[str, float, float]]) -> None:
    """Apply multipliers ``(name, value, multiplier)`` in turn to the sum of ``parts``, appending
    each as a factor whose contribution is the points it removed."""
    total = math.fsum(contribution for _, _, contribution in parts)
    for name, value, multiplier in steps:
        parts.append((name, value, -total * (1.0 - multiplier)))
        total *= multiplier


def engagement_score(p: ProfileSnapshot, now: datetime, settings: ScoringSettings) -> Score:
    """How actively the visitor uses the site, now.

    Points for sessions, page views per session, average session length and active days, then
    scaled by ``0.5 ** (days idle / engagement.recency_half_life_days)`` (factor ``recency``,
    value = days idle). Confidence ``1 - exp(-total_events / engagement.confidence_events)``.
    """
    s = settings.engagement
    parts = [
        _part("sessions", p.sessions, s.sessions_weight, s.sessions_cap),
        _part(
            "pages_per_session",
            p.pages_per_session,
            s.pages_per_session_weight,
            s.pages_per_session_cap,
        ),
        _part(
            "avg_session_seconds",
            p.avg_session_seconds,
            s.session_seconds_weight,
            s.session_seconds_cap,
        ),
        _part("days_active", p.days_active, s.days_active_weight, s.days_active_cap),
    ]
    idle = days_idle(p, now) or 0.0
    _scaled(parts, [("recency", idle, half_life(idle, s.recency_half_life_days))])
    return build_score(ENGAGEMENT, parts, _confidence(p.total_events, s.confidence_events))


def lead_score(p: ProfileSnapshot, now: datetime, settings: ScoringSettings) -> Score:
    """How likely the visitor is to book soon: an open opportunity.

    Points for open bookings (started minus completed), quote requests, contact clicks, pricing
    views, service views and return visits (sessions after the first); then scaled by recency
    (half-life ``lead.recency_half_life_days``) and, after a completed booking, by
    ``1 - 0.5 ** (days since last booking / lead.after_booking_half_life_days)`` (factor
    ``recent_booking``): a booking closes the opportunity, which reopens gradually. Confidence
    ``1 - exp(-total_events / lead.confidence_events)``.
    """
    s = settings.lead
    open_bookings = max(0.0, p.bookings_started - p.total_bookings)
    quotes, contacts = p.count(QUOTE_TYPES), p.count(CONTACT_TYPES)
    pricing, services = p.count(PRICING_TYPES), p.count(SERVICE_TYPES)
    returns = max(0.0, p.sessions - 1.0)
    parts = [
        _part("open_bookings", open_bookings, s.open_bookings_weight, s.open_bookings_cap),
        _part("quotes_requested", quotes, s.quotes_weight, s.quotes_cap),
        _part("contacts", contacts, s.contacts_weight, s.contacts_cap),
        _part("pricing_views", pricing, s.pricing_views_weight, s.pricing_views_cap),
        _part("service_views", services, s.service_views_weight, s.service_views_cap),
        _part("return_visits", returns, s.return_visits_weight, s.return_visits_cap),
    ]
    current = _now(now)
    idle = days_idle(p, current) or 0.0
    steps = [("recency", idle, half_life(idle, s.recency_half_life_days))]
    if p.last_booking_at is not None:
        since = _days_between(p.last_booking_at, current)
        reopened = 1.0 - half_life(since, s.after_booking_half_life_days)
        steps.append(("recent_booking", since, reopened))
    else:
        steps.append(("recent_booking", 0.0, 1.0))
    _scaled(parts, steps)
    return build_score(LEAD, parts, _confidence(p.total_events, s.confidence_events))


def churn_risk(p: ProfileSnapshot, now: datetime, settings: ScoringSettings) -> Score:
    """How likely the visitor is gone for good; rises the longer they stay away.

    Points for days idle (``1 - exp(-days / churn.absence_scale_days)``), for being overdue
    against their own usual gap (``min(1, days / (gap * churn.overdue_cap))``, factor value =
    days idle in usual gaps), and for having few completed bookings
    (``1 - min(1, bookings / churn.few_bookings_cap)``; loyalty removes these points). A visitor
    with no evidence scores 0. Confidence ``1 - exp(-days_active / churn.confidence_days)``.
    """
    s = settings.churn
    idle = days_idle(p, now)
    gap = typical_gap_days(p, settings)
    overdue = 0.0 if idle is None else idle / gap
    absence = 0.0 if idle is None else saturating(idle, s.absence_scale_days)
    few = (1.0 - linear(p.total_bookings, s.few_bookings_cap)) if p.has_evidence else 0.0
    parts = [
        ("days_absent", idle or 0.0, s.absence_weight * absence),
        _part("overdue_gaps", overdue, s.overdue_weight, s.overdue_cap),
        ("few_bookings", p.total_bookings, s.few_bookings_weight * few),
    ]
    days_active = max(p.days_active, 1.0) if p.has_evidence else 0.0
    return build_score(CHURN, parts, _confidence(days_active, s.confidence_days))


def price_sensitivity(p: ProfileSnapshot, now: datetime, settings: ScoringSettings) -> Score:
    """How strongly price drives the visitor's decisions; 0 without such evidence.

    Points for the share of events that are pricing views / price checks, for coupon and
    discount events, for abandoned bookings of a visitor who had looked at prices (counted at
    most once per pricing view: counts carry no order), and for an average order value below
    ``price_sensitivity.reference_order_value`` (only when completed bookings carried a value).
    ``now`` is unused: price sensitivity is a trait, not a state. Confidence
    ``1 - exp(-total_events / price_sensitivity.confidence_events)``.
    """
    s = settings.price_sensitivity
    pricing = p.count(PRICING_TYPES)
    share = min(1.0, _ratio(pricing, max(p.total_events, pricing)))
    discounts = p.count(DISCOUNT_TYPES)
    abandoned = min(p.count(ABANDON_TYPES), pricing)
    if p.total_bookings > 0 and p.total_value > 0:
        order_value = p.total_value / p.total_bookings
        low_value = max(0.0, 1.0 - order_value / s.reference_order_value)
    else:
        order_value, low_value = 0.0, 0.0
    parts = [
        _part("pricing_share", share, s.pricing_share_weight, s.pricing_share_cap),
        _part("discount_events", discounts, s.discounts_weight, s.discounts_cap),
        _part("abandoned_after_pricing", abandoned, s.abandoned_weight, s.abandoned_cap),
        ("avg_order_value", order_value, s.low_order_value_weight * low_value),
    ]
    return build_score(PRICE_SENSITIVITY, parts, _confidence(p.total_events, s.confidence_events))


_MODELS = {
    ENGAGEMENT: engagement_score,
    LEAD: lead_score,
    CHURN: churn_risk,
    PRICE_SENSITIVITY: price_sensitivity,
}


def score_all(p: ProfileSnapshot, now: datetime, settings: ScoringSettings) -> dict[str, Score]:
    """Every model's score, keyed by model type, in the order of :data:`MODEL_TYPES`."""
    return {model_type: model(p, now, settings) for model_type, model in _MODELS.items()}


@attrs.frozen
class ScoreRecord:
    """What the scorer stores for one visitor: a prediction row for each score in ``recorded``
    (those that moved at least ``record_threshold``), the segment, when it scored, and which
    write of the stored profile it scored (``ProfileState.version``)."""

    user_fingerprint: str
    scored_at: datetime
    segment: str
    recorded: tuple[Score, ...]
    version: int = 0


# --- segments and recording ----------------------------------------------------------------------


def _score_value(
    scores: Mapping[str, Score | float],
    model_type: str,
    p: ProfileSnapshot,
    now: datetime,
    settings: ScoringSettings,
) -> float:
    given = scores.get(model_type)
    if given is None:
        return _MODELS[model_type](p, now, settings).value
    return _number(given.value if isinstance(given, Score) else given)


def segment(
    p: ProfileSnapshot,
    scores: Mapping[str, Score | float],
    now: datetime,
    settings: ScoringSettings,
) -> str:
    """The visitor's segment; the first rule that applies wins:

    1. ``churned``: last seen at least ``churned_after_days`` days ago (loyal customers too);
    2. ``at-risk``: churn risk >= ``at_risk_churn``;
    3. ``loyal``: at least ``loyal_min_bookings`` completed bookings;
    4. ``engaged``: engagement >= ``engaged_min_engagement``;
    5. ``new``: everyone else — not yet established (including a visitor with no events).

    ``scores`` maps model types to a :class:`Score` or a plain value (as stored); a missing model
    is computed here.
    """
    s = settings
    idle = days_idle(p, now)
    if idle is not None and idle >= s.churned_after_days:
        return "churned"
    if _score_value(scores, CHURN, p, now, s) >= s.at_risk_churn:
        return "at-risk"
    if p.total_bookings >= s.loyal_min_bookings:
        return "loyal"
    if _score_value(scores, ENGAGEMENT, p, now, s) >= s.engaged_min_engagement:
        return "engaged"
    return "new"


def changed_enough(old: float | None, new: float, threshold: float) -> bool:
    """Whether a score moved enough to record a new prediction: always for a first score (``old``
    None or not a number), else when ``|new - old| >= threshold`` (with a 1e-9 tolerance, so 10.1 →
    11.1 counts as a move of 1). An unchanged value is never recorded, even with threshold 0."""
    if old is None or (isinstance(old, float) and math.isnan(old)):
        return True
    moved = abs(new - old)
    return moved > 0.0 and moved >= threshold - _EPSILON
