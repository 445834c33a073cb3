"""Customer journeys (domain/journeys.py) and what events add to a profile (domain/profiles.py):
pure unit tests, no I/O, no event loop."""

from __future__ import annotations

import itertools
from datetime import UTC, date, datetime, timedelta

import attrs
import pytest

from revivatech_actors.domain.journeys import (
    JOURNEY_STEP_TYPE,
    MAX_STEP_LENGTH,
    STAGES,
    SessionJourney,
    event_stage,
    higher_stage,
    touch_source,
    touchpoint,
    validate_journey_step,
    visitor_stage,
)
from revivatech_actors.domain.profiles import (
    ProfileDelta,
    ProfileState,
    delta_from_events,
    journey_rows,
)
from revivatech_actors.domain.scoring import (
    ABANDON_TYPES,
    CONTACT_TYPES,
    DISCOUNT_TYPES,
    PRICING_TYPES,
    QUOTE_TYPES,
    SERVICE_TYPES,
)
from revivatech_actors.domain.validation import FieldError, ValidEvent

from .helpers import make_event

T0 = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)
SITE = "https://revivatech.example"


def at(minutes: float) -> datetime:
    return T0 + timedelta(minutes=minutes)


def ev(
    minutes: float = 0,
    event_type: str = "page_view",
    *,
    session: str = "s1",
    visitor: str = "v1",
    **fields,
):
    """An event of ``visitor`` in ``session``, ``minutes`` after T0, with no referrer by default."""
    fields.setdefault("page_url", f"{SITE}/page")
    return make_event(
        0,
        user_fingerprint=visitor,
        session_id=session,
        event_type=event_type,
        timestamp=at(minutes),
        **fields,
    )


def step(minutes: float = 0, name: str = "checkout", stage: object = None, **fields):
    properties = {"step": name}
    if stage is not None:
        properties["stage"] = stage
    return ev(minutes, JOURNEY_STEP_TYPE, properties=properties, **fields)


def journey_of(events) -> SessionJourney:
    journey = SessionJourney(events[0].session_id)
    for e in events:
        journey.add(e)
    return journey


# --- event_stage ---------------------------------------------------------------------------------

STAGE_OF_TYPE = (
    [(t, "consideration") for t in SERVICE_TYPES + PRICING_TYPES + DISCOUNT_TYPES]
    + [(t, "decision") for t in QUOTE_TYPES + CONTACT_TYPES + ("booking_started",)]
    + [("booking_completed", "booking")]
    + [
        (t, "awareness")
        for t in ("page_view", "pageview", "click", "scroll", "custom:thing", "booking")
        + ABANDON_TYPES
    ]
)


@pytest.mark.parametrize(("event_type", "expected"), STAGE_OF_TYPE)
def test_event_stage_by_type(event_type, expected):
    assert event_stage(ev(event_type=event_type)) == expected


@pytest.mark.parametrize("stage", ["awareness", "consideration", "decision", "booking"])
def test_event_stage_of_a_step_is_the_stage_it_marks(stage):
    assert event_stage(step(stage=stage)) == stage


@pytest.mark.parametrize(
    "stage", [None, "", "BOOKING", "purchase", " decision", 3, ["booking"], {"s": 1}, True]
)
def test_event_stage_of_a_step_without_a_valid_stage_is_awareness(stage):
    e = ev(event_type=JOURNEY_STEP_TYPE, properties={"step": "x", "stage": stage})
    assert event_stage(e) == "awareness"


def test_event_stage_of_a_step_without_properties_is_awareness():
    assert event_stage(ev(event_type=JOURNEY_STEP_TYPE, properties={})) == "awareness"


@pytest.mark.parametrize("event_type", ["page_view", "service_viewed", "booking_completed"])
def test_a_stage_property_only_counts_on_a_journey_step(event_type):
    e = ev(
        event_type=event_type,
        properties={"stage": "booking" if event_type != "booking_completed" else "awareness"},
    )
    assert event_stage(e) == dict(STAGE_OF_TYPE)[event_type]


@pytest.mark.parametrize(
    "event_type", sorted({t for t, _ in STAGE_OF_TYPE} | {JOURNEY_STEP_TYPE, "retention"})
)
def test_no_event_type_shows_retention_on_its_own(event_type):
    assert event_stage(ev(event_type=event_type)) != "retention"


def test_an_explicit_step_may_mark_retention():
    # Current behaviour: a step's explicit stage is taken as given, retention included (the
    # validator accepts "retention"); note that event_stage's docstring says retention is never
    # shown by a single event.
    assert event_stage(step(stage="retention")) == "retention"


# --- higher_stage --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("a", "b", "expected"),
    [
        (None, None, None),
        (None, "decision", "decision"),
        ("decision", None, "decision"),
        ("awareness", "consideration", "consideration"),
        ("consideration", "decision", "decision"),
        ("decision", "retention", "retention"),
        ("retention", "booking", "booking"),
        ("booking", "awareness", "booking"),
        ("retention", "decision", "retention"),
        ("booking", "booking", "booking"),
        ("mystery", "awareness", "awareness"),
        ("awareness", "mystery", "awareness"),
        ("mystery", None, "mystery"),
        (None, "mystery", "mystery"),
    ],
)
def test_higher_stage(a, b, expected):
    assert higher_stage(a, b) == expected


@pytest.mark.parametrize(("a", "b"), list(itertools.product(STAGES, STAGES)))
def test_higher_stage_follows_the_rank_and_commutes(a, b):
    expected = STAGES[max(STAGES.index(a), STAGES.index(b))]
    assert higher_stage(a, b) == expected
    assert higher_stage(b, a) == expected


def test_stage_rank_order():
    assert STAGES == ("awareness", "consideration", "decision", "retention", "booking")


# --- touch_source --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("page_url", "referrer", "expected"),
    [
        (f"{SITE}/x?utm_source=google&utm_medium=cpc", "https://facebook.com/post", "google"),
        (f"{SITE}/x?a=1&utm_source=newsletter", None, "newsletter"),
        (f"{SITE}/x?utm_source=newsletter", f"{SITE}/other", "newsletter"),
        (f"{SITE}/x", "https://www.google.com/search?q=phone+repair", "www.google.com"),
        (f"{SITE}/x", "https://m.facebook.com:443/", "m.facebook.com"),
        (f"{SITE}/x", "https://www.revivatech.example/", "www.revivatech.example"),  # another host
        (None, "https://bing.com/search", "bing.com"),
        (
            f"{SITE}/x?utm_source=&utm_medium=cpc",
            "https://bing.com/",
            "bing.com",
        ),  # empty utm_source
        (f"{SITE}/x", f"{SITE}/pricing", None),  # same host: a page of the site itself
        (
            f"{SITE}/x",
            "https://REVIVATECH.example/pricing",
            None,
        ),  # hosts compare case-insensitively
        (f"{SITE}/x", None, None),  # direct visit
        (f"{SITE}/x", "", None),
        (None, None, None),
        (f"{SITE}/x", "not a url", None),  # no host to speak of
    ],
)
def test_touch_source(page_url, referrer, expected):
    assert touch_source(ev(page_url=page_url, referrer=referrer)) == expected


def test_touch_source_is_at_most_256_characters():
    host = "a" * 300 + ".example"
    assert touch_source(ev(referrer=f"https://{host}/")) == host[:256]
    assert touch_source(ev(page_url=f"{SITE}/?utm_source={'b' * 300}")) == "b" * 256


# --- touchpoint ----------------------------------------------------------------------------------


def test_touchpoint_of_an_event():
    e = ev(5, "pricing_viewed", page_url=f"{SITE}/pricing")
    assert touchpoint(e) == {"type": "pricing_viewed", "page": f"{SITE}/pricing", "at": at(5)}


def test_touchpoint_without_a_page():
    assert touchpoint(ev(1, "click", page_url=None)) == {"type": "click", "page": None, "at": at(1)}


def test_touchpoint_of_an_explicit_step_uses_the_step_name():
    e = step(7, name="chose_repair", stage="decision", page_url=f"{SITE}/repair")
    assert touchpoint(e) == {
        "type": "chose_repair",
        "page": f"{SITE}/repair",
        "at": at(7),
        "step": True,
        "stage": "decision",
    }


def test_touchpoint_at_is_a_datetime():
    assert isinstance(touchpoint(ev(3))["at"], datetime)


# --- SessionJourney.add --------------------------------------------------------------------------


def test_new_journey_is_empty_awareness():
    j = SessionJourney("s")
    assert (j.touchpoints, j.stage, j.started_at, j.last_at, j.first_source, j.last_source) == (
        [],
        "awareness",
        None,
        None,
        None,
        None,
    )


def test_add_keeps_touchpoints_in_arrival_order():
    events = [ev(30, "page_view"), ev(10, "pricing_viewed"), ev(20, "quote_requested")]
    j = journey_of(events)
    assert [(p["type"], p["at"]) for p in j.touchpoints] == [
        ("page_view", at(30)),
        ("pricing_viewed", at(10)),
        ("quote_requested", at(20)),
    ]


@pytest.mark.parametrize(
    ("types", "stages"),
    [
        (
            [
                "page_view",
                "pricing_viewed",
                "page_view",
                "quote_requested",
                "service_viewed",
                "booking_completed",
                "contact_clicked",
                "page_view",
            ],
            [
                "awareness",
                "consideration",
                "consideration",
                "decision",
                "decision",
                "booking",
                "booking",
                "booking",
            ],
        ),
        (["booking_completed", "page_view", "pricing_viewed"], ["booking", "booking", "booking"]),
        (["contact_clicked", "coupon_applied"], ["decision", "decision"]),
        (["page_view", "click"], ["awareness", "awareness"]),
    ],
)
def test_stage_only_rises(types, stages):
    j = SessionJourney("s1")
    seen = []
    for i, event_type in enumerate(types):
        j.add(ev(i, event_type))
        seen.append(j.stage)
    assert seen == stages


def test_a_step_raises_the_stage_but_an_invalid_step_stage_does_not():
    j = journey_of(
        [ev(0), step(1, stage="decision"), step(2, stage="bogus"), step(3, stage="consideration")]
    )
    assert j.stage == "decision"


@pytest.mark.parametrize("order", list(itertools.permutations(range(4))))
def test_started_and_last_are_min_and_max_whatever_the_order(order):
    minutes = [12, 3, 45, 20]
    j = journey_of([ev(minutes[i]) for i in order])
    assert (j.started_at, j.last_at) == (at(3), at(45))


SOURCED = [  # (minutes, page_url, referrer); sources: bing @5, google @10, news @20, yahoo @15
    (10, f"{SITE}/a", "https://google.com/"),
    (5, f"{SITE}/b", "https://bing.com/"),
    (20, f"{SITE}/c?utm_source=news", None),
    (15, f"{SITE}/d", "https://yahoo.com/"),
    (1, f"{SITE}/e", f"{SITE}/home"),  # earliest, but a page of the site: no source
    (30, f"{SITE}/f", None),  # latest, but direct: no source
]


@pytest.mark.parametrize(
    "order", [tuple(range(6)), tuple(reversed(range(6))), (2, 0, 5, 3, 1, 4), (4, 5, 3, 2, 1, 0)]
)
def test_first_and_last_source_by_event_time(order):
    j = journey_of(
        [ev(SOURCED[i][0], page_url=SOURCED[i][1], referrer=SOURCED[i][2]) for i in order]
    )
    assert (j.first_source, j.first_source_at) == ("bing.com", at(5))
    assert (j.last_source, j.last_source_at) == ("news", at(20))
    assert (j.started_at, j.last_at) == (at(1), at(30))


def test_a_journey_without_sources_has_none():
    j = journey_of([ev(0), ev(1, referrer=f"{SITE}/x"), ev(2, page_url=None)])
    assert (j.first_source, j.first_source_at, j.last_source, j.last_source_at) == (
        None,
        None,
        None,
        None,
    )


def test_a_single_sourced_event_is_both_first_and_last_source():
    j = journey_of([ev(0), ev(4, referrer="https://duckduckgo.com/"), ev(9)])
    assert (j.first_source, j.first_source_at, j.last_source, j.last_source_at) == (
        "duckduckgo.com",
        at(4),
        "duckduckgo.com",
        at(4),
    )


# --- visitor_stage -------------------------------------------------------------------------------


def sessions_of(*stages):
    return [{"stage": s, "started_at": at(i)} for i, s in enumerate(stages)]


@pytest.mark.parametrize(
    ("stages", "expected"),
    [
        ((), None),
        (("awareness",), "awareness"),
        (("booking",), "booking"),
        (
            ("decision", "consideration"),
            "consideration",
        ),  # the latest session's stage, not the highest
        (("consideration", "decision"), "decision"),
        (("booking", "awareness"), "retention"),
        (("booking", "decision"), "retention"),
        (("booking", "awareness", "consideration"), "retention"),
        (("booking", "booking"), "booking"),
        (("awareness", "booking"), "booking"),
        (("booking", "decision", "booking"), "booking"),
        (("decision", "retention"), "retention"),
        ((None,), "awareness"),
        (("booking", None), "retention"),
    ],
)
def test_visitor_stage(stages, expected):
    assert visitor_stage(sessions_of(*stages)) == expected


def test_visitor_stage_with_a_session_missing_its_stage():
    assert visitor_stage([{"started_at": at(0)}]) == "awareness"


# --- validate_journey_step -----------------------------------------------------------------------

MINIMAL = {"user_fingerprint": "fp-1", "session_id": "sess-1", "step": "checkout"}


def test_a_minimal_step_becomes_a_journey_step_event():
    result = validate_journey_step(dict(MINIMAL))
    assert result == ValidEvent(
        user_fingerprint="fp-1",
        session_id="sess-1",
        event_type="journey_step",
        event_id=None,
        timestamp=None,
        sent_at=None,
        page_url=None,
        referrer=None,
        value=None,
        properties={"step": "checkout"},
    )


@pytest.mark.parametrize("stage", STAGES)
def test_a_step_with_a_stage_records_it_in_properties(stage):
    result = validate_journey_step({**MINIMAL, "stage": stage})
    assert isinstance(result, ValidEvent)
    assert result.event_type == JOURNEY_STEP_TYPE
    assert result.properties == {"step": "checkout", "stage": stage}


def test_a_full_step_keeps_its_event_fields_and_properties():
    body = {
        **MINIMAL,
        "stage": "decision",
        "event_id": "123E4567-E89B-12D3-A456-426614174000",
        "timestamp": "2026-01-02T03:04:05.678+02:00",
        "sent_at": "2026-01-02T01:04:06Z",
        "page_url": f"{SITE}/book",
        "referrer": "https://google.com/",
        "value": 12,
        "properties": {"device": "iphone", "step": "overwritten", "nested": {"a": [1, 2]}},
    }
    result = validate_journey_step(body)
    assert isinstance(result, ValidEvent)
    assert result.event_type == "journey_step"
    assert result.event_id == "123e4567-e89b-12d3-a456-426614174000"
    assert result.timestamp == datetime(2026, 1, 2, 1, 4, 5, 678000, tzinfo=UTC)
    assert result.sent_at == datetime(2026, 1, 2, 1, 4, 6, tzinfo=UTC)
    assert (result.page_url, result.referrer, result.value) == (
        f"{SITE}/book",
        "https://google.com/",
        12.0,
    )
    assert result.properties == {
        "device": "iphone",
        "step": "checkout",
        "nested": {"a": [1, 2]},
        "stage": "decision",
    }
    assert body["properties"]["step"] == "overwritten"  # the input is not modified


def test_a_step_name_is_stripped():
    result = validate_journey_step({**MINIMAL, "step": "  pick device \n"})
    assert isinstance(result, ValidEvent)
    assert result.properties == {"step": "pick device"}


def test_a_step_of_the_longest_length_is_valid():
    result = validate_journey_step({**MINIMAL, "step": "s" * MAX_STEP_LENGTH})
    assert isinstance(result, ValidEvent)
    assert result.properties["step"] == "s" * MAX_STEP_LENGTH


def test_a_valid_step_stage_is_read_back_by_event_stage():
    result = validate_journey_step({**MINIMAL, "stage": "decision"})
    assert isinstance(result, ValidEvent)
    e = make_event(
        0,
        **{
            f.name: getattr(result, f.name)
            for f in attrs.fields(ValidEvent)
            if f.name not in ("event_id", "timestamp", "sent_at", "warnings")
        },
    )
    assert event_stage(e) == "decision"
    assert touchpoint(e)["type"] == "checkout" and touchpoint(e)["step"] is True


REQUIRED_STEP = "is required (or touchpoint): the name of the step, a non-empty string"
STAGE_TEXT = "must be a non-empty string (a name of STAGES ranks; any other is kept as sent)"


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        ({"step": None}, [FieldError("step", REQUIRED_STEP)]),
        ({"step": ""}, [FieldError("step", REQUIRED_STEP)]),
        ({"step": "   "}, [FieldError("step", REQUIRED_STEP)]),
        ({"step": 5}, [FieldError("step", REQUIRED_STEP)]),
        ({"step": ["a"]}, [FieldError("step", REQUIRED_STEP)]),
        (
            {"step": "s" * (MAX_STEP_LENGTH + 1)},
            [FieldError("step", f"must be at most {MAX_STEP_LENGTH} characters")],
        ),
        ({"stage": ""}, [FieldError("stage", STAGE_TEXT)]),
        ({"stage": 3}, [FieldError("stage", STAGE_TEXT)]),
        ({"journey_stage": 3}, [FieldError("journey_stage", STAGE_TEXT)]),
        ({"touchpoint": 5, "step": None}, [FieldError("touchpoint", REQUIRED_STEP)]),
        (
            {"touchpoint": "a", "step": "b"},
            [FieldError("touchpoint", "differs from step, sent too; send one of them")],
        ),
        (
            {"time_spent_seconds": -1},
            [FieldError("time_spent_seconds", "must be a finite number >= 0")],
        ),
        (
            {"time_spent_seconds": "3"},
            [FieldError("time_spent_seconds", "must be a finite number >= 0")],
        ),
        ({"content_consumed": [1]}, [FieldError("content_consumed", "must be a JSON object")]),
        (
            {"entry_method": 5},
            [FieldError("entry_method", "must be a string of at most 256 characters")],
        ),
    ],
)
def test_step_errors(changes, expected):
    body = {**MINIMAL, **changes}
    if changes.get("step", "") is None:
        del body["step"]
    assert validate_journey_step(body) == expected


def test_missing_step_is_reported_when_absent():
    assert validate_journey_step({"user_fingerprint": "fp", "session_id": "s"}) == [
        FieldError("step", REQUIRED_STEP)
    ]


def test_missing_session_id_is_reported_with_the_step_errors():
    result = validate_journey_step({"user_fingerprint": "fp", "stage": ""})
    assert result == [
        FieldError("step", REQUIRED_STEP),
        FieldError("stage", STAGE_TEXT),
        FieldError("session_id", "is required"),
    ]


def test_the_original_clients_step_is_kept_as_sent():
    result = validate_journey_step(
        {
            "user_fingerprint": "fp",
            "session_id": "s",
            "journey_stage": "conversion",
            "touchpoint": "booking_complete",
            "time_spent_seconds": 42.5,
        }
    )
    assert isinstance(result, ValidEvent)
    assert result.event_type == JOURNEY_STEP_TYPE
    assert result.properties == {
        "step": "booking_complete",
        "stage": "conversion",
        "time_spent_seconds": 42.5,
    }
    e = make_event(0, event_type=JOURNEY_STEP_TYPE, properties=result.properties)
    assert event_stage(e) == "awareness"  # kept as sent, but not a stage that ranks
    assert touchpoint(e)["stage"] == "conversion" and touchpoint(e)["time_spent_seconds"] == 42.5


def test_the_original_apis_step_fields_go_to_properties_and_columns():
    result = validate_journey_step(
        {
            "user_fingerprint": "fp",
            "session_id": "s",
            "event_type": "journey",
            "journey_stage": "decision",
            "touchpoint": "quote",
            "user_id": "u-7",
            "entry_method": "search",
            "traffic_source": "google",
            "content_consumed": {"pages": 3},
            "actions_taken": {"quote": True},
        }
    )
    assert isinstance(result, ValidEvent)
    assert result.details.user_id == "u-7"
    assert result.properties == {
        "step": "quote",
        "stage": "decision",
        "event_type": "journey",
        "entry_method": "search",
        "traffic_source": "google",
        "content_consumed": {"pages": 3},
        "actions_taken": {"quote": True},
    }
    assert result.warnings == ()


def test_event_field_errors_of_an_otherwise_valid_step():
    result = validate_journey_step(
        {**MINIMAL, "session_id": None, "value": "12", "timestamp": "yesterday"}
    )
    assert isinstance(result, list)
    assert [e.field for e in result] == ["session_id", "timestamp", "value"]


def test_properties_that_are_not_an_object_are_reported():
    result = validate_journey_step({**MINIMAL, "properties": ["a"]})
    assert result == [FieldError("properties", "must be a JSON object")]


@pytest.mark.parametrize("body", [None, [], ["step"], "checkout", 42, True])
def test_a_body_that_is_not_an_object(body):
    assert validate_journey_step(body) == [FieldError("", "an event must be a JSON object")]


@pytest.mark.parametrize("stage", [["decision"], {"name": "decision"}])
def test_a_stage_that_is_not_a_string_is_a_field_error_not_a_crash(stage):
    try:
        result = validate_journey_step({**MINIMAL, "stage": stage})
    except TypeError as exc:
        raise AssertionError(f"raised {exc!r}") from exc
    assert result == [FieldError("stage", STAGE_TEXT)]


# --- ProfileDelta.add ----------------------------------------------------------------------------

DAY = 24 * 60

VISIT = [
    ev(0, "page_view", session="s1", referrer="https://google.com/"),
    ev(1, "pageview", session="s1"),
    ev(2, "booking_started", session="s1", value=50.0),
    ev(3, "booking_completed", session="s1", value=120.5),
    ev(DAY + 5, "pricing_viewed", session="s2", value=99.0),
    ev(DAY + 1, "booking_completed", session="s2", value=None),
    ev(DAY + 9, "booking_completed", session="s2", value=30.0),
    ev(-30, "page_view", session="s0"),
    ev(2 * DAY, "service_viewed", session="s2"),
]


def test_add_counts_everything():
    d = delta_from_events("v1", VISIT)
    assert d.user_fingerprint == "v1"
    assert d.events == 9
    assert d.page_views == 3
    assert d.bookings_started == 1
    assert d.bookings_completed == 3
    assert d.value == pytest.approx(150.5)  # only completed bookings, None as 0
    assert d.first_seen == at(-30)
    assert d.last_seen == at(2 * DAY)
    assert d.last_booking_at == at(DAY + 9)
    assert d.event_counts == {
        "page_view": 2,
        "pageview": 1,
        "booking_started": 1,
        "booking_completed": 3,
        "pricing_viewed": 1,
        "service_viewed": 1,
    }
    assert d.active_days == {date(2026, 3, 1), date(2026, 3, 2), date(2026, 3, 3)}
    assert list(d.sessions) == ["s1", "s2", "s0"]  # in order of appearance
    for session_id, journey in d.sessions.items():
        assert isinstance(journey, SessionJourney)
        assert journey == journey_of([e for e in VISIT if e.session_id == session_id])
    assert d.sessions["s1"].stage == "booking"
    assert d.sessions["s0"].stage == "awareness"


def test_add_one_event_at_a_time_matches_delta_from_events():
    d = ProfileDelta("v1")
    for e in VISIT:
        d.add(e)
    assert d == delta_from_events("v1", VISIT)


def test_an_empty_delta():
    d = delta_from_events("v1", [])
    assert (d.events, d.page_views, d.bookings_started, d.bookings_completed, d.value) == (
        0,
        0,
        0,
        0,
        0.0,
    )
    assert (d.first_seen, d.last_seen, d.last_booking_at) == (None, None, None)
    assert (d.event_counts, d.active_days, d.sessions) == ({}, set(), {})
    assert list(journey_rows(d)) == []


def test_value_of_events_other_than_completed_bookings_is_ignored():
    d = delta_from_events(
        "v1", [ev(0, t, value=10.0) for t in ("page_view", "booking_started", "quote_requested")]
    )
    assert d.value == 0.0
    assert d.last_booking_at is None


def test_active_days_follow_the_events_utc_date():
    late = datetime(2026, 3, 1, 23, 59, 59, tzinfo=UTC)
    d = delta_from_events(
        "v1", [make_event(0, timestamp=late), make_event(1, timestamp=late + timedelta(seconds=2))]
    )
    assert d.active_days == {date(2026, 3, 1), date(2026, 3, 2)}


# --- journey_rows --------------------------------------------------------------------------------


def rows_by_session(d: ProfileDelta) -> dict[str, dict]:
    return {row["session_id"]: row for row in journey_rows(d)}


def test_journey_rows_one_row_per_session_with_sorted_touchpoints():
    d = delta_from_events("v1", VISIT)
    rows = list(journey_rows(d))
    assert [r["session_id"] for r in rows] == ["s1", "s2", "s0"]
    s2 = rows[1]
    assert set(s2) == {
        "user_fingerprint",
        "session_id",
        "touchpoints",
        "stage",
        "started_at",
        "last_at",
        "first_source",
        "first_source_at",
        "last_source",
        "last_source_at",
    }
    assert s2["user_fingerprint"] == "v1"
    assert [p["at"] for p in s2["touchpoints"]] == [
        at(DAY + 1),
        at(DAY + 5),
        at(DAY + 9),
        at(2 * DAY),
    ]
    assert [p["type"] for p in s2["touchpoints"]] == [
        "booking_completed",
        "pricing_viewed",
        "booking_completed",
        "service_viewed",
    ]
    assert (s2["started_at"], s2["last_at"]) == (at(DAY + 1), at(2 * DAY))
    assert rows[0]["first_source"] == rows[0]["last_source"] == "google.com"
    assert rows[2]["first_source"] is None
    # the journey itself keeps arrival order: rows sort a copy
    assert [p["at"] for p in d.sessions["s2"].touchpoints] == [
        at(DAY + 5),
        at(DAY + 1),
        at(DAY + 9),
        at(2 * DAY),
    ]


def test_journey_rows_stages():
    d = delta_from_events("v1", VISIT)
    rows = rows_by_session(d)
    assert rows["s1"]["stage"] == "booking"
    assert rows["s2"]["stage"] == "booking"  # booked itself
    assert rows["s0"]["stage"] == "awareness"  # started before the booking session


@pytest.mark.parametrize(
    ("later_types", "expected"),
    [
        (["page_view"], "retention"),
        (["pricing_viewed", "quote_requested"], "retention"),
        (["booking_started"], "retention"),
        (["page_view", "booking_completed"], "booking"),
    ],
)
def test_a_session_after_a_booked_session_is_retention_unless_it_booked(later_types, expected):
    events = [ev(0, "page_view", session="a"), ev(10, "booking_completed", session="a")]
    events += [ev(DAY + i, t, session="b") for i, t in enumerate(later_types)]
    rows = rows_by_session(delta_from_events("v1", events))
    assert rows["a"]["stage"] == "booking"
    assert rows["b"]["stage"] == expected


def test_journey_rows_without_a_booking_keep_each_sessions_stage():
    events = [
        ev(0, "pricing_viewed", session="a"),
        ev(DAY, "page_view", session="b"),
        ev(2 * DAY, "contact_clicked", session="c"),
    ]
    rows = rows_by_session(delta_from_events("v1", events))
    assert {s: r["stage"] for s, r in rows.items()} == {
        "a": "consideration",
        "b": "awareness",
        "c": "decision",
    }


def test_retention_is_measured_from_the_first_booked_session():
    events = [
        ev(0, "page_view", session="before"),
        ev(DAY, "booking_completed", session="booked1"),
        ev(2 * DAY, "page_view", session="between"),
        ev(3 * DAY, "booking_completed", session="booked2"),
        ev(4 * DAY, "quote_requested", session="after"),
    ]
    rows = rows_by_session(delta_from_events("v1", events))
    assert {s: r["stage"] for s, r in rows.items()} == {
        "before": "awareness",
        "booked1": "booking",
        "between": "retention",
        "booked2": "booking",
        "after": "retention",
    }


def test_journey_rows_do_not_change_the_delta():
    d = delta_from_events(
        "v1", [ev(0, "booking_completed", session="a"), ev(DAY, "page_view", session="b")]
    )
    assert [r["stage"] for r in journey_rows(d)] == ["booking", "retention"]
    assert d.sessions["b"].stage == "awareness"


def test_a_session_begun_before_the_booking_completed_is_not_retention():
    events = [
        ev(0, "page_view", session="a"),  # session a starts at 0 ...
        ev(5, "page_view", session="b"),  # ... b starts at 5, on another tab/device ...
        ev(60, "booking_completed", session="a"),  # ... and a books only at 60
    ]
    rows = rows_by_session(delta_from_events("v1", events))
    assert rows["a"]["stage"] == "booking"
    assert rows["b"]["stage"] == "awareness"  # it did not come back after a completed booking


# --- ProfileState.apply / plus -------------------------------------------------------------------


def base_state() -> ProfileState:
    return ProfileState(
        "v1",
        total_events=10,
        total_sessions=3,
        total_page_views=6,
        bookings_started=2,
        total_bookings=1,
        total_value=40.0,
        first_seen=at(-DAY),
        last_seen=at(-60),
        last_booking_at=at(-120),
        total_session_seconds=900.0,
        days_active=2,
        event_counts={"page_view": 6, "booking_completed": 1},
        segment="new",
        scores={"engagement_scoring": 12.5},
        updated_at=at(-60),
    )


def test_apply_adds_a_delta():
    state = base_state()
    state.apply(delta_from_events("v1", VISIT))
    assert state.total_events == 19
    assert state.total_page_views == 9
    assert state.bookings_started == 3
    assert state.total_bookings == 4
    assert state.total_value == pytest.approx(190.5)
    assert state.first_seen == at(-DAY)
    assert state.last_seen == at(2 * DAY)
    assert state.last_booking_at == at(DAY + 9)
    assert state.event_counts == {
        "page_view": 8,
        "pageview": 1,
        "booking_started": 1,
        "booking_completed": 4,
        "pricing_viewed": 1,
        "service_viewed": 1,
    }
    # sessions, days, session seconds, segment and scores stay as stored
    assert (state.total_sessions, state.days_active, state.total_session_seconds) == (3, 2, 900.0)
    assert (state.segment, state.scores, state.updated_at) == (
        "new",
        {"engagement_scoring": 12.5},
        at(-60),
    )


def test_apply_keeps_earlier_first_seen_and_later_times():
    state = ProfileState("v1", first_seen=at(-5), last_seen=at(500), last_booking_at=at(400))
    state.apply(delta_from_events("v1", [ev(0, "booking_completed", value=1.0)]))
    assert (state.first_seen, state.last_seen, state.last_booking_at) == (at(-5), at(500), at(400))


def test_apply_to_an_empty_state_takes_the_delta_times():
    state = ProfileState("v1")
    state.apply(delta_from_events("v1", [ev(3), ev(9, "booking_completed", value=5.0)]))
    assert (state.first_seen, state.last_seen, state.last_booking_at) == (at(3), at(9), at(9))
    assert (state.total_events, state.total_bookings, state.total_value) == (2, 1, 5.0)


def test_apply_an_empty_delta_changes_nothing():
    state = base_state()
    state.apply(ProfileDelta("v1"))
    assert state == base_state()


def test_plus_leaves_the_original_unchanged():
    state = base_state()
    live = state.plus(delta_from_events("v1", VISIT))
    assert state == base_state()
    assert live is not state
    assert live.event_counts is not state.event_counts
    assert live.scores is not state.scores
    live.scores["lead_scoring"] = 1.0
    assert state.scores == {"engagement_scoring": 12.5}
    assert live.total_events == 19


def test_plus_applies_several_deltas_and_skips_none():
    parts = [VISIT[:3], VISIT[3:6], VISIT[6:]]
    live = base_state().plus(
        None,
        *(delta_from_events("v1", p) for p in parts[:2]),
        None,
        delta_from_events("v1", parts[2]),
    )
    expected = base_state()
    expected.apply(delta_from_events("v1", VISIT))
    assert attrs.evolve(live, total_value=0.0) == attrs.evolve(expected, total_value=0.0)
    assert live.total_value == pytest.approx(expected.total_value)


@pytest.mark.parametrize("deltas", [(), (None,), (None, None)])
def test_plus_without_deltas_is_an_equal_copy(deltas):
    state = base_state()
    live = state.plus(*deltas)
    assert live == state and live is not state


def test_plus_in_any_order_gives_the_same_state():
    parts = [delta_from_events("v1", VISIT[i::3]) for i in range(3)]
    states = [base_state().plus(*order) for order in itertools.permutations(parts)]
    for s in states[1:]:
        assert attrs.evolve(s, total_value=0.0) == attrs.evolve(states[0], total_value=0.0)
        assert s.total_value == pytest.approx(states[0].total_value)
