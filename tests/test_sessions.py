"""What profile writes add to ``analytics_sessions`` rows (``domain.sessions``): pure, no loop."""

from __future__ import annotations

import itertools
from datetime import timedelta

import pytest

from revivatech_actors.domain.journeys import SessionJourney
from revivatech_actors.domain.profiles import delta_from_events, sessions_of
from revivatech_actors.domain.sessions import SessionDelta, session_deltas, utm_source

from .helpers import BASE_TIME, make_event

SITE = "https://revivatech.example"


def ev(seconds, event_type="page_view", session="s", page=None, referrer=None, user="u"):
    return make_event(
        0,
        user_fingerprint=user,
        session_id=session,
        event_type=event_type,
        timestamp=BASE_TIME + timedelta(seconds=seconds),
        page_url=page,
        referrer=referrer,
    )


def journey_of(*events):
    journey = SessionJourney(events[0].session_id)
    for event in events:
        journey.add(event)
    return journey


def test_a_journey_counts_the_sessions_figures():
    journey = journey_of(
        ev(20, page=f"{SITE}/services"),
        ev(
            0, page=f"{SITE}/?utm_source=news", referrer="https://news.example/"
        ),  # earliest, handled second
        ev(40, "booking_started", page=f"{SITE}/book"),
        ev(30, "pageview", page=f"{SITE}/prices"),
    )
    (delta,) = session_deltas([("u", journey)])
    assert delta == SessionDelta(
        session_id="s",
        user_fingerprint="u",
        started_at=BASE_TIME,
        last_activity_at=BASE_TIME + timedelta(seconds=40),
        event_count=4,
        page_views=3,
        entry_page=f"{SITE}/?utm_source=news",
        exit_page=f"{SITE}/book",
        referrer="https://news.example/",
        utm_source="news",
    )


def test_of_events_at_the_same_latest_time_the_last_handled_is_the_exit():
    (delta,) = session_deltas(
        [("u", journey_of(ev(5, page="/a"), ev(5, page="/b"), ev(1, page="/c")))]
    )
    assert (delta.entry_page, delta.exit_page) == ("/c", "/b")


def test_one_delta_per_session_in_order_of_first_appearance():
    events = [ev(0, session="s2"), ev(1, session="s1"), ev(2, session="s2")]
    deltas = sessions_of([delta_from_events("u", events)])
    assert [(d.session_id, d.event_count) for d in deltas] == [("s2", 2), ("s1", 1)]


def test_a_session_id_of_two_visitors_is_merged_under_the_earlier_one():
    a = delta_from_events("a", [ev(10, session="shared", page="/a", user="a")])
    b = delta_from_events(
        "b",
        [
            ev(5, session="shared", page="/b", referrer="https://r.example/", user="b"),
            ev(20, session="shared", page="/c", user="b"),
        ],
    )
    (merged,) = sessions_of([a, b])
    assert (merged.user_fingerprint, merged.event_count, merged.page_views) == ("b", 3, 3)
    assert (merged.started_at, merged.last_activity_at) == (
        BASE_TIME + timedelta(seconds=5),
        BASE_TIME + timedelta(seconds=20),
    )
    assert (merged.entry_page, merged.exit_page, merged.referrer) == (
        "/b",
        "/c",
        "https://r.example/",
    )


@pytest.mark.parametrize("split", [1, 2, 3])
def test_merging_is_the_same_in_any_order(split):
    """The rules storage applies to a row: whichever order the parts come in, one result."""
    events = [
        ev(0, page="/in?utm_source=ads", referrer="https://ads.example/"),
        ev(3, "booking_started", page="/x"),
        ev(3, page="/y"),
        ev(9, page="/out"),
    ]
    parts = [
        session_deltas([("u", journey_of(*events[i : i + split]))])[0]
        for i in range(0, len(events), split)
    ]
    results = set()
    for order in itertools.permutations(parts):
        merged = order[0]
        for part in order[1:]:
            merged = merged.merged(part)
        results.add(
            (
                merged.started_at,
                merged.last_activity_at,
                merged.event_count,
                merged.page_views,
                merged.entry_page,
                merged.referrer,
                merged.utm_source,
            )
        )
    assert results == {
        (
            BASE_TIME,
            BASE_TIME + timedelta(seconds=9),
            4,
            3,
            "/in?utm_source=ads",
            "https://ads.example/",
            "ads",
        )
    }


def test_a_journey_without_events_adds_nothing():
    assert session_deltas([("u", SessionJourney("empty"))]) == []


@pytest.mark.parametrize(
    ("page", "expected"),
    [
        (None, None),
        (f"{SITE}/", None),
        (f"{SITE}/?utm_source=news&utm_medium=mail", "news"),
        (f"{SITE}/?a=1&utm_source=x%20y#top", "x%20y"),  # as written, not decoded
        (f"{SITE}/?notutm_source=x", None),
        (f"{SITE}/?utm_source=" + "z" * 300, "z" * 256),
    ],
)
def test_utm_source(page, expected):
    assert utm_source(page) == expected
