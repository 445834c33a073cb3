"""Funnel parameters and answer (``domain.funnel``): pure, no I/O."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from revivatech_actors.domain.funnel import (
    FunnelQuery,
    FunnelStep,
    ParameterError,
    funnel_document,
    parse_duration,
    parse_funnel_query,
)

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
DEFAULT_STEPS = ("page_view", "booking_completed")


def parse(**args):
    return parse_funnel_query(args, default_steps=DEFAULT_STEPS, default_window=86400, default_range=7 * 86400, now=NOW)


@pytest.mark.parametrize(("text", "seconds"), [
    ("90", 90), ("90s", 90), ("30m", 1800), ("1.5h", 5400), ("7d", 604800), ("2w", 1209600), (" 1h ", 3600),
])
def test_durations(text, seconds):
    assert parse_duration(text, "window") == seconds


@pytest.mark.parametrize("text", ["", "0", "0s", "-1h", "1y", "h", "1 hour", "1e3", "nan"])
def test_bad_durations_name_the_parameter(text):
    with pytest.raises(ParameterError) as caught:
        parse_duration(text, "window")
    assert caught.value.parameter == "window" and repr(text) in caught.value.message


def test_defaults_fill_what_the_request_leaves_out():
    q = parse()
    assert q == FunnelQuery(DEFAULT_STEPS, NOW - timedelta(days=7), NOW, 86400, None)


def test_everything_given():
    q = parse(steps="page_view, service_viewed,booking_started", **{"from": "2026-11-01T00:00:00Z"},
              to="2026-11-02T00:00:00+01:00", window="2d", windows="1h,30m")
    assert q.steps == ("page_view", "service_viewed", "booking_started")
    assert q.start == datetime(2026, 11, 1, tzinfo=UTC) and q.end == datetime(2026, 11, 1, 23, tzinfo=UTC)
    assert (q.window, q.step_windows) == (172800, (3600, 1800))


@pytest.mark.parametrize(("args", "parameter", "says"), [
    ({"steps": ""}, "steps", "without empty ones"),
    ({"steps": "a,,b"}, "steps", "without empty ones"),
    ({"steps": ",".join(["a"] * 11)}, "steps", "at most 10"),
    ({"steps": "x" * 101}, "steps", "at most 100 characters"),
    ({"from": "yesterday"}, "from", "RFC 3339"),
    ({"to": "2026-11-01T00:00:00"}, "to", "time zone"),
    ({"from": "2026-11-26T00:00:00Z"}, "from", "before to"),
    ({"window": "soon"}, "window", "duration"),
    ({"windows": "1h,1h"}, "windows", "one duration per step after the first (1)"),
    ({"windows": "1h; DROP TABLE analytics_events"}, "windows", "duration"),
    ({"timeframe": "7 days'); DROP TABLE x; --"}, "timeframe", "unknown parameter"),
])
def test_a_bad_parameter_is_named(args, parameter, says):
    with pytest.raises(ParameterError) as caught:
        parse(**args)
    assert caught.value.parameter == parameter and says in caught.value.message


def test_the_answer_has_counts_conversions_and_medians():
    q = parse(steps="a,b,c")
    data = funnel_document(q, [FunnelStep(8, None), FunnelStep(4, 45.0), FunnelStep(1, 3615.25)],
                           computed_at=NOW, cached=False)
    assert data["steps"] == [
        {"step": "a", "count": 8, "conversionFromPrevious": 1.0, "conversionFromFirst": 1.0, "medianSecondsFromPrevious": None},
        {"step": "b", "count": 4, "conversionFromPrevious": 0.5, "conversionFromFirst": 0.5, "medianSecondsFromPrevious": 45.0},
        {"step": "c", "count": 1, "conversionFromPrevious": 0.25, "conversionFromFirst": 0.125,
         "medianSecondsFromPrevious": 3615.25},
    ]
    assert data["from"] == "2026-11-18T12:00:00.000Z" and data["to"] == "2026-11-25T12:00:00.000Z"
    assert (data["windowSeconds"], data["stepWindowsSeconds"], data["cached"]) == (86400, None, False)


def test_nobody_entering_gives_zero_conversions_not_a_division_error():
    data = funnel_document(parse(), [FunnelStep(0, None), FunnelStep(0, None)], computed_at=NOW, cached=True)
    assert [(s["count"], s["conversionFromPrevious"], s["conversionFromFirst"]) for s in data["steps"]] == [(0, 0.0, 0.0)] * 2
