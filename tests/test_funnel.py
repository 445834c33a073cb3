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
    parse_timeframe,
)

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
DEFAULT_STEPS = ("page_view", "booking_completed")


NAMED = {
    "booking": ("page_view", "booking_started", "booking_completed"),
    "quote": ("service_viewed", "quote_requested"),
}


def parse(**args):
    return parse_funnel_query(
        args,
        default_steps=DEFAULT_STEPS,
        default_window=86400,
        default_range=7 * 86400,
        now=NOW,
        named=NAMED,
    )


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("90", 90),
        ("90s", 90),
        ("30m", 1800),
        ("1.5h", 5400),
        ("7d", 604800),
        ("2w", 1209600),
        (" 1h ", 3600),
    ],
)
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
    q = parse(
        steps="page_view, service_viewed,booking_started",
        **{"from": "2026-11-01T00:00:00Z"},
        to="2026-11-02T00:00:00+01:00",
        window="2d",
        windows="1h,30m",
    )
    assert q.steps == ("page_view", "service_viewed", "booking_started")
    assert q.start == datetime(2026, 11, 1, tzinfo=UTC) and q.end == datetime(
        2026, 11, 1, 23, tzinfo=UTC
    )
    assert (q.window, q.step_windows) == (172800, (3600, 1800))


@pytest.mark.parametrize(
    ("args", "parameter", "says"),
    [
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
        ({"timeframe": "7 days'); DROP TABLE x; --"}, "timeframe", "positive whole number"),
        ({"since": "7 days"}, "since", "unknown parameter"),
    ],
)
def test_a_bad_parameter_is_named(args, parameter, says):
    with pytest.raises(ParameterError) as caught:
        parse(**args)
    assert caught.value.parameter == parameter and says in caught.value.message


def test_the_answer_has_counts_conversions_and_medians():
    q = parse(steps="a,b,c")
    data = funnel_document(
        q,
        [FunnelStep(8, None), FunnelStep(4, 45.0), FunnelStep(1, 3615.25)],
        computed_at=NOW,
        cached=False,
    )
    assert data["steps"] == [
        {
            "step": "a",
            "count": 8,
            "conversionFromPrevious": 1.0,
            "conversionFromFirst": 1.0,
            "medianSecondsFromPrevious": None,
        },
        {
            "step": "b",
            "count": 4,
            "conversionFromPrevious": 0.5,
            "conversionFromFirst": 0.5,
            "medianSecondsFromPrevious": 45.0,
        },
        {
            "step": "c",
            "count": 1,
            "conversionFromPrevious": 0.25,
            "conversionFromFirst": 0.125,
            "medianSecondsFromPrevious": 3615.25,
        },
    ]
    assert data["from"] == "2026-11-18T12:00:00.000Z" and data["to"] == "2026-11-25T12:00:00.000Z"
    assert (data["windowSeconds"], data["stepWindowsSeconds"], data["cached"]) == (
        86400,
        None,
        False,
    )


def test_nobody_entering_gives_zero_conversions_not_a_division_error():
    data = funnel_document(
        parse(), [FunnelStep(0, None), FunnelStep(0, None)], computed_at=NOW, cached=True
    )
    assert [
        (s["count"], s["conversionFromPrevious"], s["conversionFromFirst"]) for s in data["steps"]
    ] == [(0, 0.0, 0.0)] * 2


# --- the original's timeframe and funnel_name ---------------------------------------------------


@pytest.mark.parametrize(
    ("text", "seconds", "shown"),
    [
        ("1 hour", 3600, "1 hour"),
        ("24 hours", 86400, "24 hours"),
        ("7 days", 604800, "7 days"),
        ("30 days", 2592000, "30 days"),
        ("15 minutes", 900, "15 minutes"),
        ("1 minute", 60, "1 minute"),
        ("2 weeks", 1209600, "2 weeks"),
        ("1 month", 2592000, "1 month"),
        ("3 months", 7776000, "3 months"),
        ("7 Days", 604800, "7 days"),
        ("1 days", 86400, "1 day"),
        ("7  days", 604800, "7 days"),
        ("3650 days", 315360000, "3650 days"),
    ],
)
def test_timeframes(text, seconds, shown):
    assert parse_timeframe(text) == (seconds, shown)


@pytest.mark.parametrize(
    "text",
    [
        "",
        "7",
        "days",
        "0 days",
        "-1 days",
        "+1 days",
        "07 days",
        "1.5 hours",
        "7days",
        " 7 days",
        "7 days ",
        "7 days'; DROP TABLE analytics_events; --",
        "1 year",
        "1 second",
        "7 d",
        "1 hour 30 minutes",
        "3651 days",
        "1000000 days",
        "７ days",
        "7 days\n",
        "1e3 days",
    ],
)
def test_bad_timeframes_are_refused_naming_the_parameter(text):
    with pytest.raises(ParameterError) as caught:
        parse_timeframe(text)
    assert caught.value.parameter == "timeframe"


def test_timeframe_is_the_range_up_to_now():
    q = parse(timeframe="24 hours")
    assert (q.start, q.end, q.timeframe) == (NOW - timedelta(hours=24), NOW, "24 hours")
    assert q.window == 86400  # the conversion window keeps its own meaning
    assert parse(timeframe="1 hour", window="30m").window == 1800


@pytest.mark.parametrize("other", ["from", "to"])
def test_timeframe_with_from_or_to_is_refused(other):
    with pytest.raises(ParameterError) as caught:
        parse(timeframe="7 days", **{other: "2026-11-20T00:00:00Z"})
    assert caught.value.parameter == "timeframe" and f"({other} was sent)" in caught.value.message


def test_funnel_name_picks_the_configured_steps():
    q = parse(funnel_name="quote", timeframe="7 days")
    assert (q.steps, q.name) == (("service_viewed", "quote_requested"), "quote")
    assert parse().name is None


def test_an_unknown_funnel_name_lists_the_known_ones():
    with pytest.raises(ParameterError) as caught:
        parse(funnel_name="checkout")
    assert caught.value.parameter == "funnel_name"
    assert "'checkout'" in caught.value.message and "known: booking, quote" in caught.value.message
    with pytest.raises(ParameterError) as caught:
        parse_funnel_query(
            {"funnel_name": "booking"},
            default_steps=DEFAULT_STEPS,
            default_window=1,
            default_range=1,
            now=NOW,
        )
    assert "none are configured" in caught.value.message


def test_funnel_name_with_steps_is_refused():
    with pytest.raises(ParameterError) as caught:
        parse(funnel_name="booking", steps="a,b")
    assert caught.value.parameter == "funnel_name" and "not both" in caught.value.message


def test_a_long_unknown_name_is_cut_in_the_message():
    with pytest.raises(ParameterError) as caught:
        parse(funnel_name="x" * 5000)
    assert len(caught.value.message) < 200


def test_the_answer_names_the_funnel_and_timeframe():
    q = parse(funnel_name="booking", timeframe="7 days")
    data = funnel_document(
        q,
        [FunnelStep(2, None), FunnelStep(1, 5.0), FunnelStep(1, 7.0)],
        computed_at=NOW,
        cached=False,
    )
    assert (data["name"], data["timeframe"]) == ("booking", "7 days")
    assert [s["step"] for s in data["steps"]] == [
        "page_view",
        "booking_started",
        "booking_completed",
    ]
    plain = funnel_document(parse(), [FunnelStep(0, None)] * 2, computed_at=NOW, cached=False)
    assert (plain["name"], plain["timeframe"]) == (None, None)


def test_cache_key_tells_named_funnels_apart():
    a = parse(funnel_name="booking", to="2026-11-25T00:00:00Z")
    b = parse(steps="page_view,booking_started,booking_completed", to="2026-11-25T00:00:00Z")
    assert a.steps == b.steps and a.cache_key() != b.cache_key()
