"""Learned weights (``domain.learned``, ``domain.learning``): a learned score keeps the rule of
every score (contributions sum to the value, a baseline and one factor per feature), names its
model; the same samples give the same model; a backtest puts a learned model in use only when it
beats the fixed formula on the held-out cut-off; and on regular customers, where the fixed lead
formula is weak, it does."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from revivatech_actors.bench._population import generate
from revivatech_actors.config import load_settings
from revivatech_actors.domain.backtest import HistoryEvent, cutoffs, samples_of
from revivatech_actors.domain.insights import ProfileState, evaluate
from revivatech_actors.domain.learned import (
    FEATURES,
    NO_MODELS,
    LearnedModel,
    features_of,
    learned_score,
    models_in_use,
)
from revivatech_actors.domain.learning import BacktestTally, choose, fit
from revivatech_actors.domain.scoring import CHURN, LEAD, ProfileSnapshot

NOW = datetime(2026, 10, 1, tzinfo=UTC)
SCORING = load_settings(None).scoring


def a_model(model_type: str = LEAD, scale: float = 1.0) -> LearnedModel:
    names = FEATURES[model_type]
    weights = [scale * (i - len(names) / 2) for i in range(len(names))]
    return LearnedModel(model_type, names, -1.0, weights, [0.3] * len(names))


profiles = st.builds(
    ProfileSnapshot,
    total_events=st.integers(0, 500),
    total_sessions=st.integers(0, 50),
    total_page_views=st.integers(0, 300),
    bookings_started=st.integers(0, 10),
    total_bookings=st.integers(0, 10),
    last_seen=st.datetimes(
        min_value=datetime(2026, 1, 1), max_value=datetime(2026, 10, 1), timezones=st.just(UTC)
    ),
    last_booking_at=st.none()
    | st.datetimes(
        min_value=datetime(2026, 1, 1), max_value=datetime(2026, 10, 1), timezones=st.just(UTC)
    ),
    days_active=st.integers(0, 100),
    event_counts=st.dictionaries(
        st.sampled_from(["quote_requested", "pricing_viewed", "service_viewed"]),
        st.integers(0, 30),
    ),
)


@settings(max_examples=200, deadline=None)
@given(profiles, st.sampled_from([LEAD, CHURN]), st.floats(0.0, 8.0))
def test_a_learned_score_s_factors_sum_to_its_value(p, model_type, scale):
    model = a_model(model_type, scale)
    score = learned_score(model, p, NOW, SCORING)
    assert 0 <= score.value <= 100
    assert math.fsum(f.contribution for f in score.factors) == pytest.approx(score.value, abs=0.01)
    assert [f.name for f in score.factors] == ["baseline", *FEATURES[model_type]]
    fractions = [x for _, _, x in features_of(model_type, p, NOW, SCORING)]
    assert all(0.0 <= x <= 1.0 for x in fractions)
    assert score.value == pytest.approx(100 * model.probability(fractions), abs=0.005)
    assert score.model_version == model.version and score.model_version.startswith("learned-")


def test_a_factor_pushes_by_its_weight_from_the_typical_visitor():
    model = a_model(LEAD)
    quiet = ProfileSnapshot(total_events=1, last_seen=NOW - timedelta(days=40))
    keen = ProfileSnapshot(
        total_events=30,
        total_sessions=6,
        bookings_started=2,
        last_seen=NOW,
        event_counts={"quote_requested": 2, "pricing_viewed": 5},
    )
    by_name = {f.name: f for f in learned_score(model, keen, NOW, SCORING).factors}
    weights = dict(zip(model.features, model.weights, strict=True))
    baseline = 100 * model.probability([0.3] * 9)
    assert by_name["baseline"].contribution == pytest.approx(baseline, abs=1e-4)
    assert by_name["recency"].value == 0.0  # seen now: evidence in days
    # the weight of return visits is positive: more than the typical fraction pushes up
    assert weights["return_visits"] > 0 and by_name["return_visits"].contribution > 0
    assert (
        learned_score(model, keen, NOW, SCORING).value
        != learned_score(model, quiet, NOW, SCORING).value
    )


def test_a_model_s_version_is_its_numbers_and_survives_a_round_trip():
    model = a_model(CHURN)
    again = LearnedModel.from_json(model.to_json())
    assert again == model and again.version == model.version
    assert a_model(CHURN, 2.0).version != model.version
    report = {
        "models": {
            CHURN: {"inUse": "learned", "model": model.to_json()},
            LEAD: {"inUse": "fixed", "model": None},
        }
    }
    assert dict(models_in_use(report)) == {CHURN: model}
    assert models_in_use(None) is NO_MODELS


def test_evaluate_scores_with_the_learned_models_in_use_and_the_formulas_otherwise():
    state = ProfileState("v", total_events=5, total_sessions=2, last_seen=NOW - timedelta(days=3))
    model = a_model(CHURN)
    scores, _ = evaluate(state, NOW, SCORING, {CHURN: model})
    assert scores[CHURN].model_version == model.version
    assert scores[LEAD].model_version == "fixed"
    fixed, _ = evaluate(state, NOW, SCORING)
    assert all(s.model_version == "fixed" for s in fixed.values())


def test_the_same_samples_give_the_same_model():
    rng = np.random.default_rng(5)
    x = rng.random((400, len(FEATURES[CHURN])))
    y = x[:, 0] + rng.normal(0, 0.3, 400) > 0.6
    assert fit(CHURN, x, y) == fit(CHURN, x.copy(), y.copy())
    assert fit(CHURN, x, y).weights[0] > 0  # the feature that drives the outcome


def tally_of(kind: str, visitors: int) -> BacktestTally:
    population = generate(kind, visitors, now=NOW, seed=11)
    horizon = timedelta(days=SCORING.horizon_days)
    histories = [
        [
            HistoryEvent(
                e["event_type"],
                e["session_id"],
                datetime.fromisoformat(e["timestamp"].replace("Z", "+00:00")),
                e.get("value"),
            )
            for e in v.events + v.future
        ]
        for v in population.visitors
    ]
    times = [e.timestamp for events in histories for e in events]
    at = cutoffs(min(times), max(times), horizon, SCORING.backtest_cutoffs)
    tally = BacktestTally(SCORING, at)
    for events in histories:
        for sample in samples_of(events, at, horizon):
            tally.add(sample)
    return tally


def test_on_regular_customers_a_learned_lead_model_is_put_in_use():
    choice = choose(LEAD, tally_of("regular", 1500), min_positives=100, min_gain=0.01)
    assert choice.fixed.roc_auc < 0.7  # the formula closes the opportunity at a booking
    assert choice.in_use == "learned" and choice.learned.roc_auc > 0.85, choice.reason
    assert choice.version == choice.model.version
    assert choice.to_json()["model"]["weights"]["recent_booking"] > 0  # bookers book again
