"""[scoring]: the settings of the explainable scores (docs/scoring.md), one table per model
(``[scoring.engagement]``, ``[scoring.lead]``, ``[scoring.churn]``,
``[scoring.price_sensitivity]``) and, in ``[scoring]`` itself, what belongs to no one model: the
segment rules, when a score is recorded, and the scorer's pace.

In a model's table a ``*_weight`` is the points its factor gives at saturation (>= 0; each
model's weights sum to 100 by default); a ``*_cap`` / ``*_scale_*`` / ``*_half_life_*`` is where
the factor saturates or how fast it decays (> 0). Times are days unless a name says seconds.
"""

from typing import Any

import attrs

from ._checks import integer, number, points, share


def _weight() -> Any:
    return number(0, inclusive=True)


@attrs.frozen(kw_only=True)
class EngagementSettings:
    """[scoring.engagement]: how actively the visitor uses the site, now."""

    sessions_weight: float = _weight()
    sessions_cap: float = number(0)
    pages_per_session_weight: float = _weight()
    pages_per_session_cap: float = number(0)
    session_seconds_weight: float = _weight()
    session_seconds_cap: float = number(0)  # seconds of average session length
    days_active_weight: float = _weight()
    days_active_cap: float = number(0)
    recency_half_life_days: float = number(0)
    confidence_events: float = number(0)


@attrs.frozen(kw_only=True)
class LeadSettings:
    """[scoring.lead]: how likely the visitor is to book soon."""

    open_bookings_weight: float = _weight()
    open_bookings_cap: float = number(0)
    quotes_weight: float = _weight()
    quotes_cap: float = number(0)
    contacts_weight: float = _weight()
    contacts_cap: float = number(0)
    pricing_views_weight: float = _weight()
    pricing_views_cap: float = number(0)
    service_views_weight: float = _weight()
    service_views_cap: float = number(0)
    return_visits_weight: float = _weight()
    return_visits_cap: float = number(0)
    recency_half_life_days: float = number(0)
    after_booking_half_life_days: float = number(0)
    confidence_events: float = number(0)


@attrs.frozen(kw_only=True)
class ChurnSettings:
    """[scoring.churn]: how likely the visitor is gone for good."""

    absence_weight: float = _weight()
    absence_scale_days: float = number(0)
    overdue_weight: float = _weight()
    overdue_cap: float = number(0)  # in usual gaps between the visitor's active days
    default_gap_days: float = number(0)
    few_bookings_weight: float = _weight()
    few_bookings_cap: float = number(0)
    confidence_days: float = number(0)


@attrs.frozen(kw_only=True)
class PriceSensitivitySettings:
    """[scoring.price_sensitivity]: how strongly price drives the visitor's decisions."""

    pricing_share_weight: float = _weight()
    pricing_share_cap: float = number(0)
    discounts_weight: float = _weight()
    discounts_cap: float = number(0)
    abandoned_weight: float = _weight()
    abandoned_cap: float = number(0)
    low_order_value_weight: float = _weight()
    reference_order_value: float = number(0)
    confidence_events: float = number(0)


@attrs.frozen(kw_only=True)
class ScoringSettings:
    """[scoring]: the segment rules, when a score is recorded and the scorer's pace; then one
    table per model."""

    churned_after_days: int = integer(1)
    at_risk_churn: float = points()
    loyal_min_bookings: int = integer(1)
    engaged_min_engagement: float = points()
    record_threshold: float = number(0, inclusive=True)  # points; 0 records every change
    max_share: float = share()  # most of one core's time the scorer may take
    rescore_interval: float = number(0)  # seconds: idle visitors are rescored this often
    horizon_days: float = number(0)  # how far the lead and churn questions look ahead
    backtest_cutoffs: int = integer(1, 100)  # cut-offs a backtest judges the scores at
    learn_interval: float = number(0)  # seconds between backtests of the scores
    learn_work_share: float = share()  # of the wall time a backtest's scan may work
    learn_min_positives: int = integer(1)  # outcomes a fit needs before it may be used
    learn_min_gain: float = number(0, inclusive=True)  # ROC AUC a learned model must add
    engagement: EngagementSettings
    lead: LeadSettings
    churn: ChurnSettings
    price_sensitivity: PriceSensitivitySettings


# Until the models had tables of their own, their settings sat in [scoring] itself, named
# <prefix><key>: those names must keep working (deprecated), so this says where each went.
_MODELS: dict[str, tuple[type, str]] = {
    "engagement": (EngagementSettings, "engagement_"),
    "lead": (LeadSettings, "lead_"),
    "churn": (ChurnSettings, "churn_"),
    "price_sensitivity": (PriceSensitivitySettings, "price_"),
}

#: Deprecated path of a setting -> its path now, e.g. ("scoring", "lead_quotes_weight") ->
#: ("scoring", "lead", "quotes_weight").
RENAMED: dict[tuple[str, ...], tuple[str, ...]] = {
    ("scoring", prefix + field.name): ("scoring", table, field.name)
    for table, (cls, prefix) in _MODELS.items()
    for field in attrs.fields(cls)
}
