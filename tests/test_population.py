"""Synthetic populations with known futures (bench/_population.py): deterministic, valid for the
ingest API, labels that agree with the hidden future, and two behaviours that differ as
documented. Pure, sync tests."""

from __future__ import annotations

import functools
import uuid
from datetime import UTC, datetime, timedelta

import pytest

from revivatech_actors.bench._population import POPULATIONS, Population, generate
from revivatech_actors.domain.validation import ValidEvent, validate_event

NOW = datetime(2025, 7, 16, 12, 0, 0, 500, tzinfo=UTC)  # sub-millisecond: edges are exact
DAYS, HORIZON = 90.0, 9.0
MANY = 2000


@functools.cache
def population(kind: str, visitors: int = MANY, seed: int = 7) -> Population:
    return generate(kind, visitors, now=NOW, days=DAYS, horizon_days=HORIZON, seed=seed)


def _time(event: dict) -> datetime:
    return datetime.fromisoformat(event["timestamp"].replace("Z", "+00:00"))


@pytest.mark.parametrize("kind", POPULATIONS)
def test_same_seed_gives_the_same_population_another_seed_another(kind):
    small = generate(kind, 200, now=NOW, seed=3)
    assert generate(kind, 200, now=NOW, seed=3) == small
    assert generate(kind, 200, now=NOW, seed=4).visitors != small.visitors
    # a larger population starts with the smaller one
    assert generate(kind, 300, now=NOW, seed=3).visitors[:200] == small.visitors


@pytest.mark.parametrize("kind", POPULATIONS)
def test_every_event_is_valid_for_ingest_and_in_the_window(kind):
    pop = population(kind)
    start, end = NOW - timedelta(days=DAYS), NOW + timedelta(days=HORIZON)
    assert (pop.kind, pop.now, pop.horizon_days, len(pop.visitors)) == (kind, NOW, HORIZON, MANY)
    ids = set()
    for visitor in pop.visitors:
        assert visitor.events, "every visitor has an event by now"
        times = [_time(e) for e in visitor.events + visitor.future]
        assert times == sorted(times)
        assert all(t <= NOW for t in times[: len(visitor.events)])
        assert all(NOW < t for t in times[len(visitor.events) :])
        assert start <= times[0] and times[-1] <= end
        for event, moment in zip(visitor.events + visitor.future, times, strict=True):
            valid = validate_event(event)
            assert isinstance(valid, ValidEvent), valid
            assert not valid.warnings
            assert valid.user_fingerprint == visitor.fingerprint
            assert valid.event_id == event["event_id"]
            assert uuid.UUID(event["event_id"]).version == 4
            assert valid.timestamp == moment
            assert event["timestamp"].endswith("Z") and len(event["timestamp"]) == 24
            assert valid.page_url is not None and valid.page_url.startswith("https://")
            assert ("value" in event) == (event["event_type"] == "booking_completed")
            ids.add(event["event_id"])
    assert len(ids) == sum(len(v.events) + len(v.future) for v in pop.visitors)


@pytest.mark.parametrize("kind", POPULATIONS)
def test_labels_agree_with_the_future(kind):
    pop = population(kind)
    for visitor in pop.visitors:
        books = any(e["event_type"] == "booking_completed" for e in visitor.future)
        assert visitor.books_within_horizon == books
        assert visitor.active_within_horizon == bool(visitor.future)


@pytest.mark.parametrize("kind", POPULATIONS)
def test_base_rates_are_reasonable(kind):
    visitors = population(kind).visitors
    books = sum(v.books_within_horizon for v in visitors) / len(visitors)
    inactive = sum(not v.active_within_horizon for v in visitors) / len(visitors)
    assert 0.10 <= books <= 0.30
    assert 0.30 <= inactive <= 0.60


def _rebook_rate(kind: str) -> float:
    """Of the visitors who completed a booking by now, the share who book within the horizon."""
    booked = [
        v
        for v in population(kind).visitors
        if any(e["event_type"] == "booking_completed" for e in v.events)
    ]
    assert len(booked) >= 300
    return sum(v.books_within_horizon for v in booked) / len(booked)


def test_regular_customers_book_again_one_off_customers_rarely():
    one_off, regular = _rebook_rate("one_off"), _rebook_rate("regular")
    assert one_off < 0.2
    assert regular > 0.4
    assert regular > 3 * one_off


def test_the_event_types_the_scores_count_occur():
    for kind in POPULATIONS:
        seen = {e["event_type"] for v in population(kind).visitors for e in v.events}
        assert {
            "page_view",
            "service_viewed",
            "pricing_viewed",
            "quote_requested",
            "contact_clicked",
            "booking_started",
            "booking_completed",
            "booking_abandoned",
            "coupon_applied",
        } <= seen


def test_naive_now_is_utc_and_bad_arguments_are_refused():
    naive = generate("one_off", 20, now=NOW.replace(tzinfo=None), seed=1)
    assert naive.now == NOW and naive == generate("one_off", 20, now=NOW, seed=1)
    assert generate("regular", 0, now=NOW).visitors == ()
    with pytest.raises(ValueError, match="kind"):
        generate("weekly", 1, now=NOW)
    with pytest.raises(ValueError):
        generate("one_off", -1, now=NOW)
    with pytest.raises(ValueError):
        generate("one_off", 1, now=NOW, days=0)
    with pytest.raises(ValueError):
        generate("one_off", 1, now=NOW, horizon_days=float("inf"))
