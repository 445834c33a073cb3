"""Learned weights for the lead and churn scores (docs/scoring.md, "Learned weights"). Pure: no
I/O, no clock; no heavy import (the scorer uses it; fitting is :mod:`.learning`'s).

A learned model is a logistic regression on the same explainable evidence the fixed formulas
read, each piece as a fraction in [0, 1] (:func:`features_of`). Its score is the probability of
the model's outcome in the next ``scoring.horizon_days``, times 100:

    value = 100 × σ(intercept + Σ weightᵢ × xᵢ)

and its factors keep the rule of every score (contributions sum to the value):

* ``baseline``: the score of a visitor whose every fraction is the mean of the fit's samples,
  ``100 × σ(intercept + Σ weightᵢ × meanᵢ)``;
* one factor per feature: its share of the rest, ``(value − baseline) × wᵢ(xᵢ − meanᵢ) / Σⱼ
  wⱼ(xⱼ − meanⱼ)``; so a factor is positive when it pushes this visitor above the typical one,
  negative when below. When every push is nil, all are 0 and the value is the baseline.

What callers can rely on: the same model and profile give the same score; ``value`` in
[0, 100] (2 decimals), and the contributions sum to it within 0.01.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Mapping
from datetime import datetime
from types import MappingProxyType
from typing import Any

import attrs
import orjson

from ..config import ScoringSettings
from .scoring import (
    CHURN,
    CONTACT_TYPES,
    LEAD,
    PRICING_TYPES,
    QUOTE_TYPES,
    SERVICE_TYPES,
    ProfileSnapshot,
    Score,
    build_score,
    churn_risk,
    days_idle,
    half_life,
    lead_score,
    linear,
    saturating,
    typical_gap_days,
)

__all__ = ["FEATURES", "NO_MODELS", "LearnedModel", "features_of", "learned_score", "models_in_use"]

#: Each learned model's features, in order.
FEATURES: dict[str, tuple[str, ...]] = {
    LEAD: (
        "open_bookings",
        "quotes_requested",
        "contacts",
        "pricing_views",
        "service_views",
        "return_visits",
        "recency",
        "recent_booking",
        "bookings",
    ),
    CHURN: ("days_absent", "overdue_gaps", "bookings", "days_active", "sessions"),
}


def _since_booking(p: ProfileSnapshot, now: datetime) -> float | None:
    if p.last_booking_at is None:
        return None
    return max(0.0, (now - p.last_booking_at).total_seconds() / 86400.0)


def features_of(
    model_type: str, p: ProfileSnapshot, now: datetime, settings: ScoringSettings
) -> list[tuple[str, float, float]]:
    """``(name, evidence, fraction)`` of each feature of ``model_type`` (:data:`FEATURES`):
    the evidence in its own unit (a count, days), the fraction in [0, 1] the model weighs, with
    the caps and half-lives of the fixed formula's settings."""
    idle = days_idle(p, now) or 0.0
    since = _since_booking(p, now)
    bookings = (
        "bookings",
        p.total_bookings,
        linear(p.total_bookings, settings.churn.few_bookings_cap),
    )
    if model_type == LEAD:
        s = settings.lead
        open_bookings = max(0.0, p.bookings_started - p.total_bookings)
        returns = max(0.0, p.sessions - 1.0)
        counts = [
            ("open_bookings", open_bookings, s.open_bookings_cap),
            ("quotes_requested", p.count(QUOTE_TYPES), s.quotes_cap),
            ("contacts", p.count(CONTACT_TYPES), s.contacts_cap),
            ("pricing_views", p.count(PRICING_TYPES), s.pricing_views_cap),
            ("service_views", p.count(SERVICE_TYPES), s.service_views_cap),
            ("return_visits", returns, s.return_visits_cap),
        ]
        found = [(name, value, linear(value, cap)) for name, value, cap in counts]
        found.append(("recency", idle, half_life(idle, s.recency_half_life_days)))
        recent = 0.0 if since is None else half_life(since, s.after_booking_half_life_days)
        found.append(("recent_booking", since or 0.0, recent))
        found.append(bookings)
        return found
    if model_type == CHURN:
        s2 = settings.churn
        gap = typical_gap_days(p, settings)
        return [
            ("days_absent", idle, saturating(idle, s2.absence_scale_days)),
            ("overdue_gaps", idle / gap, linear(idle / gap, s2.overdue_cap)),
            bookings,
            ("days_active", p.days_active, linear(p.days_active, s2.confidence_days)),
            ("sessions", p.sessions, linear(p.sessions, settings.engagement.sessions_cap)),
        ]
    raise ValueError(f"no learned model for {model_type!r}")


def _floats(values: Any) -> tuple[float, ...]:
    return tuple(float(v) for v in values)


def _sigmoid(z: float) -> float:
    if z >= 0:
        return 1.0 / (1.0 + math.exp(-z))
    e = math.exp(z)
    return e / (1.0 + e)


@attrs.frozen
class LearnedModel:
    """A fitted logistic regression on :data:`FEATURES` of ``model_type``; ``means`` are the
    fit's mean fractions (the baseline visitor). ``version`` names it in ``ml_predictions``."""

    model_type: str
    features: tuple[str, ...]
    intercept: float = attrs.field(converter=float)
    weights: tuple[float, ...] = attrs.field(converter=_floats)
    means: tuple[float, ...] = attrs.field(converter=_floats)
    #: ``learned-`` and 12 hex digits of the model's own numbers: the same fit, the same name,
    #: on every instance.
    version: str = attrs.field(
        init=False,
        eq=False,
        default=attrs.Factory(lambda self: self._digest(), takes_self=True),
    )

    def _digest(self) -> str:
        digest = hashlib.sha256(orjson.dumps(self.to_json(with_version=False))).hexdigest()
        return f"learned-{digest[:12]}"

    def probability(self, fractions: list[float]) -> float:
        z = self.intercept + math.fsum(w * x for w, x in zip(self.weights, fractions, strict=True))
        return _sigmoid(z)

    def to_json(self, *, with_version: bool = True) -> dict[str, Any]:
        data: dict[str, Any] = {
            "modelType": self.model_type,
            "intercept": self.intercept,
            "weights": dict(zip(self.features, self.weights, strict=True)),
            "means": dict(zip(self.features, self.means, strict=True)),
        }
        if with_version:
            data["version"] = self.version
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> LearnedModel:
        model_type = data["modelType"]
        features = FEATURES[model_type]
        return cls(
            model_type,
            features,
            float(data["intercept"]),
            tuple(float(data["weights"][name]) for name in features),
            tuple(float(data["means"][name]) for name in features),
        )


def learned_score(
    model: LearnedModel, p: ProfileSnapshot, now: datetime, settings: ScoringSettings
) -> Score:
    """``model``'s score of ``p`` at ``now`` (see the module docstring); its confidence is the
    fixed formula's (it measures the evidence, not the weighting)."""
    found = features_of(model.model_type, p, now, settings)
    fractions = [x for _, _, x in found]
    value = 100.0 * model.probability(fractions)
    baseline = 100.0 * model.probability(list(model.means))
    pushes = [w * (x - m) for w, x, m in zip(model.weights, fractions, model.means, strict=True)]
    total = math.fsum(pushes)
    share = (value - baseline) / total if abs(total) > 1e-12 else 0.0
    parts = [("baseline", baseline / 100.0, baseline)]
    if share:
        parts += [
            (name, evidence, push * share)
            for (name, evidence, _), push in zip(found, pushes, strict=True)
        ]
    else:  # nothing pushes: the baseline is the value
        parts = [("baseline", value / 100.0, value)] + [
            (name, evidence, 0.0) for name, evidence, _ in found
        ]
    fixed = (lead_score if model.model_type == LEAD else churn_risk)(p, now, settings)
    score = build_score(model.model_type, parts, fixed.confidence)
    return attrs.evolve(score, model_version=model.version)


#: No learned model in use: every score from its fixed formula.
NO_MODELS: Mapping[str, LearnedModel] = MappingProxyType({})


def models_in_use(report: Mapping[str, Any] | None) -> Mapping[str, LearnedModel]:
    """The learned models a backtest's report (``GET /api/analytics/models``' ``data``) puts in
    use, by model type; none for no report."""
    if report is None:
        return NO_MODELS
    return MappingProxyType(
        {
            model_type: LearnedModel.from_json(choice["model"])
            for model_type, choice in report.get("models", {}).items()
            if choice.get("inUse") == "learned" and choice.get("model")
        }
    )
