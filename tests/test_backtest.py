"""The backtest's pure parts (``domain.backtest``, ``domain.model_figures``): a profile rebuilt
as of a cut-off is the one the profile pipeline holds after the same events; cut-offs, labels
and samples, visitor by visitor and from one time-ordered stream; the figures of a score
against outcomes."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from revivatech_actors.config import load_settings
from revivatech_actors.domain.backtest import (
    HistoryEvent,
    SampleStream,
    VisitorHistory,
    cutoffs,
    samples_of,
)
from revivatech_actors.domain.insights import snapshot
from revivatech_actors.domain.learning import BacktestTally, choose
from revivatech_actors.domain.model_figures import model_figures
from revivatech_actors.domain.profiles import ProfileState, Touch, delta_from_events
from revivatech_actors.domain.scoring import CHURN, LEAD

T0 = datetime(2026, 9, 1, tzinfo=UTC)
DAY = timedelta(days=1)
TYPES = ["page_view", "service_viewed", "pricing_viewed", "booking_started", "booking_completed"]


def pipeline_snapshot(events: list[HistoryEvent]):
    """The profile the service holds after ``events``: its delta, and the session and day sets
    storage counts, as the profile writer and reader build them."""
    touches = [
        Touch(e.event_type, e.session_id, e.timestamp, None, None, e.value, {}, None, None)
        for e in events
    ]
    delta = delta_from_events("v", touches)
    state = ProfileState("v")
    state.apply(delta)
    state.total_sessions = len(delta.sessions)
    state.days_active = len(delta.active_days)
    state.total_session_seconds = sum(
        (j.last_at - j.started_at).total_seconds() for j in delta.sessions.values()
    )
    return snapshot(state)


@settings(max_examples=60, deadline=None)
@given(st.randoms(use_true_random=False), st.integers(1, 40))
def test_a_rebuilt_profile_is_the_one_the_pipeline_holds(rng: random.Random, count: int):
    times = sorted(T0 + timedelta(minutes=rng.randrange(0, 60 * 24 * 20)) for _ in range(count))
    events = [
        HistoryEvent(rng.choice(TYPES), f"s{rng.randrange(4)}", at, rng.choice([None, 12.5, 80.0]))
        for at in times
    ]
    history = VisitorHistory()
    for event in events:
        history.add(event)
    assert history.snapshot() == pipeline_snapshot(events)


def test_cutoffs_are_a_horizon_apart_and_leave_a_whole_horizon_after_the_last():
    horizon = 9 * DAY
    assert cutoffs(T0, T0 + 90 * DAY, horizon, 4) == [T0 + d * DAY for d in (54, 63, 72, 81)]
    assert cutoffs(T0, T0 + 20 * DAY, horizon, 4) == [T0 + 11 * DAY]  # a past of 9 days at least
    assert cutoffs(T0, T0 + 17 * DAY, horizon, 4) == []  # not two horizons of history


def test_samples_take_the_past_up_to_each_cutoff_and_label_the_horizon_after_it():
    horizon = 9 * DAY
    events = [
        HistoryEvent("page_view", "s1", T0 + 1 * DAY, None),
        HistoryEvent("booking_started", "s1", T0 + 1 * DAY + timedelta(minutes=5), None),
        HistoryEvent("booking_completed", "s2", T0 + 15 * DAY, 90.0),  # in the 1st horizon
        HistoryEvent("page_view", "s3", T0 + 39 * DAY, None),
    ]
    at = [T0, T0 + 10 * DAY, T0 + 20 * DAY, T0 + 30 * DAY]
    found = list(samples_of(events, at, horizon))
    assert [s.cutoff for s in found] == at[1:]  # not seen yet at the first
    first, second, third = found
    assert first.profile.total_events == 2 and first.booked and not first.inactive
    assert second.profile.total_events == 3 and second.profile.total_bookings == 1
    assert not second.booked and second.inactive  # nothing from day 20 to 29
    assert third.profile.total_events == 3 and not third.inactive  # day 39: the horizon's end


@settings(max_examples=150, deadline=None)
@given(st.randoms(use_true_random=False), st.integers(1, 8), st.integers(0, 4))
def test_one_time_ordered_stream_finds_the_samples_found_visitor_by_visitor(
    rng: random.Random, visitors: int, spacing: int
):
    """Cut-offs a horizon apart or less (spacing 0: one), events on them and on horizon ends."""
    horizon = 9 * DAY
    at = [T0 + 20 * DAY + n * (horizon - spacing * DAY) for n in range(1 + (spacing > 0) * 3)]
    moments = [*at, *(c + horizon for c in at)]
    by_visitor = {}
    for v in range(visitors):
        times = sorted(
            rng.choice(moments) if rng.random() < 0.3 else T0 + rng.randrange(60 * 24) * DAY / 24
            for _ in range(rng.randrange(1, 25))
        )
        by_visitor[f"v{v}"] = [
            HistoryEvent(rng.choice(TYPES), f"s{rng.randrange(3)}", t, rng.choice([None, 9.0]))
            for t in times
        ]
    merged = sorted((e.timestamp, fp, i) for fp, es in by_visitor.items() for i, e in enumerate(es))
    found = []
    stream = SampleStream(at, horizon, found.append)
    for _, fp, i in merged:
        stream.add(fp, by_visitor[fp][i])
    stream.finish()
    expected = [s for events in by_visitor.values() for s in samples_of(events, at, horizon)]
    assert sorted(found, key=repr) == sorted(expected, key=repr)
    assert [s.cutoff for s in found] == sorted(s.cutoff for s in found)  # a cut-off's at a time
    assert len(stream.histories) == visitors


def test_a_horizon_includes_its_last_moment():
    event = HistoryEvent("booking_completed", "s", T0 + 9 * DAY, 1.0)
    before = HistoryEvent("page_view", "s", T0, None)
    (sample,) = samples_of([before, event], [T0], 9 * DAY)
    assert sample.booked and not sample.inactive


def test_the_fixed_formulas_are_tallied_per_model_and_judged_on_the_last_cutoff():
    scoring = load_settings(None).scoring
    horizon = 9 * DAY
    at = [T0, T0 + 5 * DAY]
    tally = BacktestTally(scoring, at)
    keen = [HistoryEvent("pricing_viewed", "a", T0 - 3 * DAY + i * DAY, None) for i in range(8)]
    keen.append(HistoryEvent("booking_completed", "b", T0 + 8 * DAY, 50.0))
    idle = [HistoryEvent("page_view", "c", T0 - 30 * DAY, None)]
    for events in (keen, idle):
        for sample in samples_of(events, at, horizon):
            tally.add(sample)
    lead = choose(LEAD, tally, min_positives=1, min_gain=0.01)
    churn = choose(CHURN, tally, min_positives=1, min_gain=0.01)
    assert lead.held_out == at[1] and lead.fixed.samples == 2 and lead.fit_samples == 2
    assert lead.fixed.positives == 1 and lead.fixed.roc_auc == 1.0  # the keen one scored higher
    assert churn.fixed.positives == 1 and churn.fixed.roc_auc == 1.0
    assert lead.in_use == "fixed"  # a learned model cannot beat 1.0 by 0.01
    assert lead.reason.startswith("fixed: ROC AUC ")
    too_few = choose(LEAD, tally, min_positives=5, min_gain=0.01)
    assert too_few.model is None and "fewer than scoring.learn_min_positives = 5" in too_few.reason


def test_figures_of_a_perfect_a_reversed_and_a_tied_ranking():
    outcomes = [False, False, True, True]
    assert model_figures([0.1, 0.2, 0.8, 0.9], outcomes).roc_auc == 1.0
    assert model_figures([0.9, 0.8, 0.2, 0.1], outcomes).roc_auc == 0.0
    assert model_figures([0.5] * 4, outcomes).roc_auc == 0.5


def test_brier_calibration_and_base_rate():
    figures = model_figures([0.0, 0.05, 0.95, 1.0], [False, False, True, True])
    assert figures.brier == pytest.approx((0.05**2 * 2) / 4)
    assert figures.base_rate == 0.5
    low, high = figures.calibration
    assert (low.low, low.high, low.samples, low.observed) == (0.0, 0.1, 2, 0.0)
    assert (high.low, high.high, high.samples, high.observed) == (0.9, 1.0, 2, 1.0)  # 1.0 too
    assert low.predicted == pytest.approx(0.025)


def test_one_class_has_no_auc_and_no_samples_no_figures():
    assert model_figures([0.2, 0.3], [False, False]).roc_auc is None
    empty = model_figures([], [])
    assert (empty.samples, empty.roc_auc, empty.brier, empty.calibration) == (0, None, None, ())
    with pytest.raises(ValueError, match="2 probabilities for 1 outcomes"):
        model_figures([0.1, 0.2], [True])
