"""[scoring]: the settings of the explainable scores (docs/scoring.md)."""

import attrs

from ._checks import integer, number, points, share


@attrs.frozen(kw_only=True)
class ScoringSettings:
    """[scoring]: weights and caps of the explainable scores (docs/scoring.md), segment rules, and
    how far a score must move before a prediction row is written.

    A ``*_weight`` is the points its factor gives at saturation (>= 0; each model's weights sum to
    100 by default); a ``*_cap`` / ``*_scale*`` / ``*_half_life*`` is where the factor saturates
    or how fast it decays (> 0). Times are days.
    """

    engagement_sessions_weight: float = number(0, inclusive=True)
    engagement_sessions_cap: float = number(0)
    engagement_pages_per_session_weight: float = number(0, inclusive=True)
    engagement_pages_per_session_cap: float = number(0)
    engagement_session_seconds_weight: float = number(0, inclusive=True)
    engagement_session_seconds_cap: float = number(0)  # seconds of average session length
    engagement_days_active_weight: float = number(0, inclusive=True)
    engagement_days_active_cap: float = number(0)
    engagement_recency_half_life_days: float = number(0)
    engagement_confidence_events: float = number(0)
    lead_open_bookings_weight: float = number(0, inclusive=True)
    lead_open_bookings_cap: float = number(0)
    lead_quotes_weight: float = number(0, inclusive=True)
    lead_quotes_cap: float = number(0)
    lead_contacts_weight: float = number(0, inclusive=True)
    lead_contacts_cap: float = number(0)
    lead_pricing_views_weight: float = number(0, inclusive=True)
    lead_pricing_views_cap: float = number(0)
    lead_service_views_weight: float = number(0, inclusive=True)
    lead_service_views_cap: float = number(0)
    lead_return_visits_weight: float = number(0, inclusive=True)
    lead_return_visits_cap: float = number(0)
    lead_recency_half_life_days: float = number(0)
    lead_after_booking_half_life_days: float = number(0)
    lead_confidence_events: float = number(0)
    churn_absence_weight: float = number(0, inclusive=True)
    churn_absence_scale_days: float = number(0)
    churn_overdue_weight: float = number(0, inclusive=True)
    churn_overdue_cap: float = number(0)  # in usual gaps between the visitor's active days
    churn_default_gap_days: float = number(0)
    churn_few_bookings_weight: float = number(0, inclusive=True)
    churn_few_bookings_cap: float = number(0)
    churn_confidence_days: float = number(0)
    price_pricing_share_weight: float = number(0, inclusive=True)
    price_pricing_share_cap: float = number(0)
    price_discounts_weight: float = number(0, inclusive=True)
    price_discounts_cap: float = number(0)
    price_abandoned_weight: float = number(0, inclusive=True)
    price_abandoned_cap: float = number(0)
    price_low_order_value_weight: float = number(0, inclusive=True)
    price_reference_order_value: float = number(0)
    price_confidence_events: float = number(0)
    churned_after_days: int = integer(1)
    at_risk_churn: float = points()
    loyal_min_bookings: int = integer(1)
    engaged_min_engagement: float = points()
    record_threshold: float = number(0, inclusive=True)  # points; 0 records every change
    max_share: float = share()  # most of one core's time the scorer may take
    rescore_interval: float = number(0)  # seconds: idle visitors are rescored this often
