"""Profile deltas, journeys and scores in storage (``apply_profile_deltas``, ``load_profiles``,
``visitor_keys``, ``load_journeys``, ``record_scores``, ``recent_predictions``,
``profiles_to_rescore``): one contract, both engines."""

from __future__ import annotations

import random
import uuid
from datetime import date, datetime, timedelta

import attrs
import pytest
import trio

from revivatech_actors.config import load_settings
from revivatech_actors.domain.insights import insights_document, score_record
from revivatech_actors.domain.profiles import delta_from_events
from revivatech_actors.domain.scoring import (
    CHURN,
    ENGAGEMENT,
    LEAD,
    MODEL_TYPES,
    PRICE_SENSITIVITY,
    Factor,
    Score,
    ScoreRecord,
)
from revivatech_actors.domain.validation import EventDetails
from revivatech_actors.storage import open_storage

from .helpers import BASE_TIME, make_event, query

DAY = timedelta(days=1)


@pytest.fixture
async def storage(storage_url):
    async with open_storage(storage_url) as storage:
        await storage.migrate()
        yield storage


@pytest.fixture
def scoring():
    return load_settings(None, {}, {}).scoring


def visitor_events():
    """Visitor v: 2 sessions over 2 days, a booking started and completed (149.5)."""
    return [
        make_event(0, user_fingerprint="v", session_id="v-s1", event_type="page_view"),
        make_event(60, user_fingerprint="v", session_id="v-s1", event_type="service_viewed"),
        make_event(120, user_fingerprint="v", session_id="v-s1", event_type="booking_started"),
        make_event(
            0,
            user_fingerprint="v",
            session_id="v-s2",
            event_type="page_view",
            timestamp=BASE_TIME + DAY,
        ),
        make_event(
            0,
            user_fingerprint="v",
            session_id="v-s2",
            event_type="booking_completed",
            value=149.5,
            timestamp=BASE_TIME + DAY + timedelta(minutes=5),
        ),
    ]


def event(fp: str, session: str, seconds: float, event_type: str = "page_view", **fields):
    """An event of ``fp`` in ``session``, ``seconds`` after BASE_TIME."""
    return make_event(
        0,
        user_fingerprint=fp,
        session_id=session,
        event_type=event_type,
        timestamp=BASE_TIME + timedelta(seconds=seconds),
        **fields,
    )


def as_visitor(events, visitor):
    """The same events (new ids) for another visitor, sessions renamed after it."""
    return [
        attrs.evolve(
            e,
            event_id=str(uuid.uuid4()),
            user_fingerprint=visitor,
            session_id=f"{visitor}-{e.session_id}",
        )
        for e in events
    ]


async def apply(storage, fp, events, **options):
    """Store ``events`` and apply their delta; the returned state of ``fp``."""
    await storage.write_batch(events)
    return (await storage.apply_profile_deltas([delta_from_events(fp, events)], **options))[fp]


def without_updated_at(state):
    return attrs.evolve(state, updated_at=None)


def touch_times(journey):
    return [datetime.fromisoformat(point["at"]) for point in journey.touchpoints]


async def journeys_by_session(storage, fp):
    return {j.session_id: j for j in await storage.load_journeys(fp)}


# ------------------------------------------------------------------------------- profiles


async def test_a_first_event_counts_one_session(storage, scoring):
    first = make_event(0, user_fingerprint="first", session_id="first-s1")
    await storage.write_batch([first])
    rollups = await storage.apply_profile_deltas([delta_from_events("first", [first])])
    assert rollups["first"].total_sessions == 1  # the original service said 0 here
    (profile,) = (await storage.load_profiles(["first"])).values()
    assert rollups["first"] == profile
    assert (
        profile.total_events,
        profile.total_sessions,
        profile.total_page_views,
        profile.days_active,
    ) == (1, 1, 1, 1)
    assert profile.first_seen == profile.last_seen == first.timestamp
    assert profile.updated_at is not None
    document = insights_document(profile, [], first.timestamp, scoring)
    assert (document["profile"]["totalSessions"], document["profile"]["daysActive"]) == (1, 1)


async def test_profile_figures_are_exact(storage):
    events = visitor_events()
    await storage.write_batch(events)
    rollups = await storage.apply_profile_deltas([delta_from_events("v", events)])
    assert rollups["v"].total_sessions == 2 and rollups["v"].days_active == 2
    profile = (await storage.load_profiles(["v", "nobody"]))["v"]
    assert rollups["v"] == profile
    assert profile.total_session_seconds == pytest.approx(120 + 300)  # summed from the sessions
    assert (
        profile.total_events,
        profile.total_page_views,
        profile.bookings_started,
        profile.total_bookings,
    ) == (5, 2, 1, 1)
    assert profile.total_value == pytest.approx(149.5)
    assert profile.event_counts == {
        "page_view": 2,
        "service_viewed": 1,
        "booking_started": 1,
        "booking_completed": 1,
    }
    assert profile.first_seen == events[0].timestamp and profile.last_seen == events[-1].timestamp
    assert profile.last_booking_at == events[-1].timestamp
    assert (profile.segment, profile.scores) == (None, {})


async def test_the_returned_states_are_the_stored_rows_of_every_visitor(storage):
    """Several visitors in one call: each gets back exactly what ``load_profiles`` then reads,
    ``updated_at`` included; an existing profile comes back whole, not only the delta."""
    events = {fp: as_visitor(visitor_events(), fp) for fp in ("r1", "r2", "r3")}
    await storage.write_batch([e for fp in events for e in events[fp][:2]])
    first = await storage.apply_profile_deltas(
        [delta_from_events(fp, events[fp][:2]) for fp in events]
    )
    assert set(first) == set(events)
    assert first == await storage.load_profiles(list(events))

    await storage.write_batch([e for fp in ("r1", "r2") for e in events[fp][2:]])
    second = await storage.apply_profile_deltas(
        [delta_from_events(fp, events[fp][2:]) for fp in ("r1", "r2")]
    )
    assert set(second) == {"r1", "r2"}  # only the visitors written
    loaded = await storage.load_profiles(list(events))
    assert second == {fp: loaded[fp] for fp in ("r1", "r2")}
    assert loaded["r3"] == first["r3"]
    for fp in ("r1", "r2"):
        assert (second[fp].total_events, second[fp].total_sessions, second[fp].days_active) == (
            5,
            2,
            2,
        )
        assert second[fp].total_session_seconds == pytest.approx(120 + 300)
        assert second[fp].updated_at >= first[fp].updated_at
    assert (loaded["r3"].total_events, loaded["r3"].total_sessions, loaded["r3"].days_active) == (
        2,
        1,
        1,
    )


async def test_deltas_are_commutative(storage):
    """The same events for two visitors, their halves applied in opposite orders (as two writers
    might), give the same profile (but for ``updated_at``, the time of the last write) and the same
    journeys (touchpoints appended in the order the writes came)."""
    results, journeys = [], []
    for visitor, order in (("a", (0, 1)), ("b", (1, 0))):
        events = as_visitor(visitor_events(), visitor)
        halves = (events[:2], events[2:])
        for index in order:
            await storage.write_batch(halves[index])
            await storage.apply_profile_deltas([delta_from_events(visitor, halves[index])])
        profile = (await storage.load_profiles([visitor]))[visitor]
        results.append(without_updated_at(attrs.evolve(profile, user_fingerprint="*")))
        journeys.append(
            [
                (
                    j.session_id.removeprefix(f"{visitor}-"),
                    j.stage,
                    j.first_touch_source,
                    j.last_touch_source,
                    j.started_at,
                    j.updated_at,
                    sorted(touch_times(j)),
                )
                for j in await storage.load_journeys(visitor)
            ]
        )
    assert results[0] == results[1]
    assert (results[0].total_events, results[0].days_active, results[0].total_sessions) == (5, 2, 2)
    assert journeys[0] == journeys[1]
    assert [(sid, stage) for sid, stage, *_ in journeys[0]] == [
        ("v-s1", "decision"),
        ("v-s2", "booking"),
    ]


@pytest.mark.parametrize("order", [(0, 1, 2), (2, 1, 0), (1, 2, 0)])
async def test_devices_add_up_and_the_latest_user_id_wins_in_any_order_of_writes(storage, order):
    """device_counts merge by adding; customer_id is the user_id of the latest event that had
    one, on equal times the greater id, whatever order the writes come in."""
    fp = f"ident-{''.join(map(str, order))}"
    parts = [
        [
            event(fp, "s1", 0, details=EventDetails(device_type="mobile", user_id="u-1")),
            event(fp, "s1", 10, details=EventDetails(device_type="mobile")),
        ],
        [
            event(fp, "s2", 500, details=EventDetails(device_type="desktop", user_id="u-2")),
            event(fp, "s2", 500, details=EventDetails(user_id="u-0")),
        ],  # same time: "u-2" > "u-0"
        [event(fp, "s1", 20)],  # nothing of either
    ]
    for index in order:
        await storage.write_batch(parts[index])
        await storage.apply_profile_deltas([delta_from_events(fp, parts[index])])
    profile = (await storage.load_profiles([fp]))[fp]
    assert profile.device_counts == {"mobile": 2, "desktop": 1}
    assert (profile.customer_id, profile.customer_id_at) == (
        "u-2",
        BASE_TIME + timedelta(seconds=500),
    )
    live = delta_from_events(fp, [e for part in parts for e in part])
    assert (live.customer_id, live.device_counts) == ("u-2", {"mobile": 2, "desktop": 1})


async def test_a_day_or_session_seen_again_is_not_counted_again(storage):
    events = visitor_events()
    await storage.write_batch(events)
    await storage.apply_profile_deltas([delta_from_events("v", events)])
    later = make_event(500, user_fingerprint="v", session_id="v-s1", event_type="page_view")
    await storage.write_batch([later])
    again = await storage.apply_profile_deltas([delta_from_events("v", [later])])
    assert (again["v"].total_sessions, again["v"].days_active) == (2, 2)
    profile = (await storage.load_profiles(["v"]))["v"]
    assert profile.total_events == 6
    assert profile.event_counts == {
        "page_view": 3,
        "service_viewed": 1,
        "booking_started": 1,
        "booking_completed": 1,
    }
    assert len(await storage.load_journeys("v")) == 2


async def test_sessions_and_days_count_once_when_the_delta_is_split_into_single_events(storage):
    """Every event its own write, in a shuffled order: two sessions and two days, counted once."""
    events = visitor_events()
    await storage.write_batch(events)
    shuffled = events[:]
    random.Random(7).shuffle(shuffled)
    states = [
        (await storage.apply_profile_deltas([delta_from_events("v", [e])]))["v"] for e in shuffled
    ]
    sessions_seen = [len({e.session_id for e in shuffled[: i + 1]}) for i in range(len(shuffled))]
    days_seen = [len({e.timestamp.date() for e in shuffled[: i + 1]}) for i in range(len(shuffled))]
    assert [s.total_sessions for s in states] == sessions_seen
    assert [s.days_active for s in states] == days_seen
    profile = (await storage.load_profiles(["v"]))["v"]
    assert profile == states[-1]
    assert (
        profile.total_events,
        profile.total_sessions,
        profile.days_active,
        profile.total_bookings,
    ) == (5, 2, 2, 1)
    assert profile.event_counts == {
        "page_view": 2,
        "service_viewed": 1,
        "booking_started": 1,
        "booking_completed": 1,
    }


async def test_visitor_keys_are_the_counted_sessions_and_days(storage):
    empty = await storage.visitor_keys("nobody")
    assert (empty.sessions, empty.days) == (frozenset(), frozenset())
    events = visitor_events()
    await apply(storage, "v", events[:3])
    keys = await storage.visitor_keys("v")
    assert keys.sessions == frozenset({"v-s1"})
    assert keys.days == frozenset({date(2026, 11, 1)})
    await apply(storage, "v", events[3:])
    await apply(storage, "w", [event("w", "w-s1", 0)])
    keys = await storage.visitor_keys("v")
    assert keys.sessions == frozenset({"v-s1", "v-s2"})
    assert keys.days == frozenset({date(2026, 11, 1), date(2026, 11, 2)})
    assert all(type(day) is date for day in keys.days)
    profile = (await storage.load_profiles(["v"]))["v"]
    assert (profile.total_sessions, profile.days_active) == (len(keys.sessions), len(keys.days))


def writer_visitor_events(fp):
    """4 sessions over 2 days: s1 looks around, s2 starts a booking, s3 completes it (day 2),
    s4 comes back after it."""
    return [
        event(fp, f"{fp}-s1", 0),
        event(fp, f"{fp}-s1", 30, "service_viewed"),
        event(fp, f"{fp}-s1", 60),
        event(fp, f"{fp}-s2", 3600),
        event(fp, f"{fp}-s2", 3630, "booking_started"),
        event(fp, f"{fp}-s2", 3660),
        event(fp, f"{fp}-s3", 86400),
        event(fp, f"{fp}-s3", 86430),
        event(fp, f"{fp}-s3", 86460, "booking_completed", value=80.0),
        event(fp, f"{fp}-s4", 90000),
        event(fp, f"{fp}-s4", 90030),
        event(fp, f"{fp}-s4", 90060),
    ]


async def test_two_storages_writing_one_visitor_at_once_give_exact_figures(storage_url):
    """Two instances (each its own Storage) bring halves of the same visitors' events at the same
    time: every session and day appears in both halves, yet each counts once, every touchpoint is
    kept once, and each session ends at its highest stage."""
    visitors = [f"w{n}" for n in range(12)]
    events = {fp: writer_visitor_events(fp) for fp in visitors}
    async with open_storage(storage_url) as one, open_storage(storage_url) as two:
        await one.migrate()
        await one.write_batch([e for fp in visitors for e in events[fp]])
        returned: dict[str, list] = {fp: [] for fp in visitors}

        async def write(storage, fp, part):
            # part 0 holds the booking (index 8), part 1 does not
            state = (
                await storage.apply_profile_deltas([delta_from_events(fp, events[fp][part::2])])
            )[fp]
            returned[fp].append(state)

        async with trio.open_nursery() as nursery:
            for fp in visitors:
                nursery.start_soon(write, one, fp, 0)
                nursery.start_soon(write, two, fp, 1)

        profiles = await one.load_profiles(visitors)
        for fp in visitors:
            profile = profiles[fp]
            assert (profile.total_events, profile.total_sessions, profile.days_active) == (
                12,
                4,
                2,
            ), fp
            assert (profile.total_page_views, profile.bookings_started, profile.total_bookings) == (
                9,
                1,
                1,
            ), fp
            assert profile.total_value == pytest.approx(80.0)
            assert profile.event_counts == {
                "page_view": 9,
                "service_viewed": 1,
                "booking_started": 1,
                "booking_completed": 1,
            }
            assert profile.total_session_seconds == pytest.approx(4 * 60)
            assert query(
                storage_url,
                "SELECT sum(event_count), sum(page_views) FROM analytics_sessions"
                " WHERE user_fingerprint = %s",
                (fp,),
            ) == [(12, 9)], fp
            assert profile in returned[fp]  # the writer that committed last saw the final row
            keys = await two.visitor_keys(fp)
            assert keys.sessions == {f"{fp}-s{n}" for n in range(1, 5)}
            assert len(keys.days) == 2
            journeys = await two.load_journeys(fp)
            assert [j.session_id for j in journeys] == [f"{fp}-s{n}" for n in range(1, 5)]
            assert [j.stage for j in journeys] == [
                "consideration",
                "decision",
                "booking",
                "retention",
            ]
            by_session = {}
            for e in events[fp]:
                by_session.setdefault(e.session_id, []).append(e.timestamp)
            for j in journeys:
                assert sorted(touch_times(j)) == by_session[j.session_id]
                assert (j.started_at, j.updated_at) == (
                    by_session[j.session_id][0],
                    by_session[j.session_id][-1],
                )


# ------------------------------------------------------------------------------- sessions


def session_rows(storage_url, session_id):
    return query(
        storage_url,
        "SELECT session_id, user_fingerprint, event_count, page_views, entry_page, exit_page,"
        " referrer, utm_source FROM analytics_sessions WHERE session_id = %s",
        (session_id,),
    )


@pytest.mark.parametrize("order", ["in order", "later first"])
async def test_session_rows_come_with_the_profile_write_in_any_order(storage, storage_url, order):
    early = [
        event(
            "u",
            "s-1",
            0,
            page_url="https://x.example/landing?utm_source=news",
            referrer="https://news.example/",
        ),
        event("u", "s-1", 30, "service_viewed", page_url="https://x.example/services"),
    ]
    late = [event("u", "s-1", 600, page_url="https://x.example/book")]
    await storage.write_batch(early + late)
    assert (
        session_rows(storage_url, "s-1") == []
    )  # the events' commit leaves sessions to the profile writes
    for part in [early, late] if order == "in order" else [late, early]:
        await storage.apply_profile_deltas([delta_from_events("u", part)])
    assert session_rows(storage_url, "s-1") == [
        (
            "s-1",
            "u",
            3,
            2,
            "https://x.example/landing?utm_source=news",
            "https://x.example/book",
            "https://news.example/",
            "news",
        )
    ]
    profile = (await storage.load_profiles(["u"]))["u"]
    assert profile.total_session_seconds == pytest.approx(600)


async def test_a_session_id_sent_by_two_visitors_is_one_row(storage, storage_url):
    """analytics_sessions is keyed by session id alone: two visitors of one write sharing an id
    (a client reusing ids) make one row holding both, created by the earlier visitor."""
    one = [event("a", "shared", 10, page_url="https://x.example/a")]
    two = [
        event("b", "shared", 5, page_url="https://x.example/b"),
        event("b", "shared", 20, page_url="https://x.example/c"),
    ]
    await storage.write_batch(one + two)
    await storage.apply_profile_deltas([delta_from_events("a", one), delta_from_events("b", two)])
    assert session_rows(storage_url, "shared") == [
        ("shared", "b", 3, 3, "https://x.example/b", "https://x.example/c", None, None)
    ]
    profiles = await storage.load_profiles(["a", "b"])
    assert (profiles["a"].total_sessions, profiles["b"].total_sessions) == (
        1,
        1,
    )  # a session each, in their journeys


# ------------------------------------------------------------------------------- journeys


async def test_touchpoints_are_appended_in_time_order_across_writes(storage):
    step = event(
        "t",
        "t-s1",
        30,
        "journey_step",
        properties={"step": "read_reviews", "stage": "consideration"},
        page_url="https://revivatech.example/reviews",
    )
    writes = [
        [
            event("t", "t-s1", 0, page_url="https://revivatech.example/"),
            event("t", "t-s1", 10, "service_viewed"),
        ],
        [step],
        [event("t", "t-s1", 40, "quote_requested"), event("t", "t-s1", 50)],
    ]
    for n, events in enumerate(writes, 1):
        await apply(storage, "t", events)
        (journey,) = await storage.load_journeys("t")
        expected = [e for w in writes[:n] for e in w]
        assert touch_times(journey) == [e.timestamp for e in expected]
    assert [p["type"] for p in journey.touchpoints] == [
        "page_view",
        "service_viewed",
        "read_reviews",
        "quote_requested",
        "page_view",
    ]
    assert [p["page"] for p in journey.touchpoints] == [e.page_url for w in writes for e in w]
    assert journey.touchpoints[2].get("step") is True
    assert not any(p.get("step") for i, p in enumerate(journey.touchpoints) if i != 2)
    assert journey.stage == "decision"
    assert (journey.started_at, journey.updated_at) == (
        BASE_TIME,
        BASE_TIME + timedelta(seconds=50),
    )
    profile = (await storage.load_profiles(["t"]))["t"]
    assert (profile.total_sessions, profile.total_events) == (1, 5)


async def test_a_session_stops_taking_touchpoints_once_it_holds_max_touchpoints(storage):
    """With ``max_touchpoints=3``: a session holding fewer takes the next write; one holding 3 or
    more takes none, while the profile's counts, the stage and the times still change; the cap is
    per session."""
    first = [event("c", "c-s1", 0), event("c", "c-s1", 1)]
    second = [event("c", "c-s1", 2), event("c", "c-s1", 3)]
    await apply(storage, "c", first, max_touchpoints=3)
    (journey,) = await storage.load_journeys("c")
    assert touch_times(journey) == [e.timestamp for e in first]
    await apply(storage, "c", second, max_touchpoints=3)
    (journey,) = await storage.load_journeys("c")
    held = touch_times(journey)
    assert len(held) >= 3
    assert held == [e.timestamp for e in first + second][: len(held)]

    third = [event("c", "c-s1", 4, "booking_started"), event("c", "c-s1", 5), event("c", "c-s2", 6)]
    state = await apply(storage, "c", third, max_touchpoints=3)
    journeys = await journeys_by_session(storage, "c")
    assert touch_times(journeys["c-s1"]) == held  # full: nothing appended
    assert journeys["c-s1"].stage == "decision"  # but the stage still rises
    assert journeys["c-s1"].updated_at == BASE_TIME + timedelta(seconds=5)
    assert touch_times(journeys["c-s2"]) == [
        BASE_TIME + timedelta(seconds=6)
    ]  # another session: its own cap
    assert (state.total_events, state.total_sessions, state.bookings_started) == (7, 2, 1)
    assert state.event_counts == {"page_view": 6, "booking_started": 1}

    await apply(storage, "c", [event("c", "c-s1", 7)])  # the default cap (500) takes it
    assert touch_times((await journeys_by_session(storage, "c"))["c-s1"])[
        -1
    ] == BASE_TIME + timedelta(seconds=7)


async def test_a_sessions_stage_only_rises(storage):
    writes = [
        ("booking_started", "decision"),
        ("page_view", "decision"),
        ("service_viewed", "decision"),
        ("booking_completed", "booking"),
        ("quote_requested", "booking"),
        ("page_view", "booking"),
    ]
    for n, (event_type, stage) in enumerate(writes):
        await apply(storage, "st", [event("st", "st-s1", n * 10, event_type)])
        (journey,) = await storage.load_journeys("st")
        assert journey.stage == stage, (n, event_type)
    # an explicit step naming a lower stage does not lower it either
    await apply(
        storage,
        "st",
        [event("st", "st-s1", 100, "journey_step", properties={"step": "x", "stage": "awareness"})],
    )
    assert (await storage.load_journeys("st"))[0].stage == "booking"
    # and one naming a higher stage raises it
    await apply(storage, "up", [event("up", "up-s1", 0, "service_viewed")])
    await apply(
        storage,
        "up",
        [event("up", "up-s1", 10, "journey_step", properties={"step": "x", "stage": "decision"})],
    )
    assert (await storage.load_journeys("up"))[0].stage == "decision"


async def test_a_session_starting_after_a_stored_completed_booking_is_retention(storage):
    await apply(
        storage,
        "ret",
        [
            event("ret", "ret-s1", 0, "service_viewed"),
            event("ret", "ret-s1", 60, "booking_completed", value=50.0),
        ],
    )
    await apply(storage, "ret", [event("ret", "ret-s2", 3600)])  # a later visit: retention
    await apply(
        storage, "ret", [event("ret", "ret-s3", 7200, "booking_started")]
    )  # retention beats decision
    await apply(
        storage,
        "ret",
        [
            event("ret", "ret-s4", 9000),
            event("ret", "ret-s4", 9060, "booking_completed", value=20.0),
        ],
    )  # booked again: booking
    await apply(
        storage, "ret", [event("ret", "ret-s0", -3600)]
    )  # an older session arriving late: not retention
    journeys = await journeys_by_session(storage, "ret")
    assert {sid: j.stage for sid, j in journeys.items()} == {
        "ret-s0": "awareness",
        "ret-s1": "booking",
        "ret-s2": "retention",
        "ret-s3": "retention",
        "ret-s4": "booking",
    }
    # the stored retention still rises to booking when the session books
    await apply(storage, "ret", [event("ret", "ret-s2", 3700, "booking_completed", value=5.0)])
    assert (await journeys_by_session(storage, "ret"))["ret-s2"].stage == "booking"
    profile = (await storage.load_profiles(["ret"]))["ret"]
    assert (profile.total_sessions, profile.total_bookings) == (5, 3)
    assert profile.last_booking_at == BASE_TIME + timedelta(seconds=9060)


async def test_a_booking_earlier_in_the_same_delta_makes_a_later_session_retention(storage):
    await apply(
        storage,
        "rd",
        [
            event("rd", "rd-s1", 0, "booking_completed", value=1.0),
            event("rd", "rd-s2", 600),
            event("rd", "rd-s0", -600),
        ],
    )
    journeys = await journeys_by_session(storage, "rd")
    assert {sid: j.stage for sid, j in journeys.items()} == {
        "rd-s0": "awareness",
        "rd-s1": "booking",
        "rd-s2": "retention",
    }


@pytest.mark.parametrize(
    "storage_url",
    [
        "sqlite",
        "postgres",
    ],
    indirect=True,
)
async def test_a_session_begun_before_the_booking_stays_below_retention_when_it_goes_on(storage):
    await apply(storage, "rb", [event("rb", "rb-s1", 0)])
    await apply(storage, "rb", [event("rb", "rb-s2", 600, "booking_completed", value=10.0)])
    await apply(storage, "rb", [event("rb", "rb-s1", 1200)])  # rb-s1 goes on after rb-s2 booked
    journeys = await journeys_by_session(storage, "rb")
    assert journeys["rb-s1"].started_at == BASE_TIME  # it started before the booking (at +600 s)
    assert journeys["rb-s1"].stage == "awareness"


async def test_first_and_last_touch_sources(storage):
    """The first touch is the earliest touch with a source, the last the latest one, whatever the
    order the writes come in; a session without any source has neither."""
    events = [
        event("src", "src-s1", 0),  # direct
        event("src", "src-s1", 10, referrer="https://www.google.com/search?q=repair"),
        event(
            "src",
            "src-s1",
            20,
            page_url="https://revivatech.example/offer?utm_source=newsletter&utm_medium=email",
        ),
        event(
            "src",
            "src-s1",
            30,
            referrer="https://revivatech.example/page/1",
            page_url="https://revivatech.example/page/2",
        ),  # inside the site: no source
    ]
    await apply(storage, "src", events[2:])
    (journey,) = await storage.load_journeys("src")
    assert (journey.first_touch_source, journey.last_touch_source) == ("newsletter", "newsletter")
    await apply(storage, "src", events[:2])
    await apply(storage, "src", [event("src", "src-s2", 40), event("src", "src-s2", 50)])
    journeys = await journeys_by_session(storage, "src")
    assert (journeys["src-s1"].first_touch_source, journeys["src-s1"].last_touch_source) == (
        "www.google.com",
        "newsletter",
    )
    assert (journeys["src-s2"].first_touch_source, journeys["src-s2"].last_touch_source) == (
        None,
        None,
    )

    # a later write with a later source moves the last touch only
    await apply(storage, "src", [event("src", "src-s1", 60, referrer="https://bing.com/")])
    j = (await journeys_by_session(storage, "src"))["src-s1"]
    assert (j.first_touch_source, j.last_touch_source) == ("www.google.com", "bing.com")


@pytest.mark.parametrize("which", ["first", "last"])
async def test_touch_sources_do_not_depend_on_how_deltas_were_coalesced(storage, which):
    if which == "first":
        # the earliest sourced touch is bing (+1 s); google (+5 s) came in the write holding the
        # start
        parts = [
            [event("{fp}", "s", 0), event("{fp}", "s", 5, referrer="https://google.com/")],
            [event("{fp}", "s", 1, referrer="https://bing.com/")],
        ]
    else:
        # the latest sourced touch is bing (+5 s); google (+0 s) came in the write holding the end
        parts = [
            [event("{fp}", "s", 0, referrer="https://google.com/"), event("{fp}", "s", 10)],
            [event("{fp}", "s", 5, referrer="https://bing.com/")],
        ]
    split = [[attrs.evolve(e, user_fingerprint="split") for e in part] for part in parts]
    whole = [attrs.evolve(e, user_fingerprint="whole") for part in parts for e in part]
    for part in split:
        await apply(storage, "split", part)
    await apply(storage, "whole", whole)
    (j_split,) = await storage.load_journeys("split")
    (j_whole,) = await storage.load_journeys("whole")
    assert getattr(j_whole, f"{which}_touch_source") == "bing.com"
    assert getattr(j_split, f"{which}_touch_source") == "bing.com"


async def test_journeys_come_in_order_of_start(storage):
    await apply(storage, "o", [event("o", "o-late", 1000), event("o", "o-late", 1100)])
    await apply(storage, "o", [event("o", "o-early", 0)])
    await apply(storage, "o", [event("o", "o-mid", 500)])
    await apply(storage, "other", [event("other", "other-s", -5000)])
    journeys = await storage.load_journeys("o")
    assert [j.session_id for j in journeys] == ["o-early", "o-mid", "o-late"]
    # an older event of o-late, arriving now, moves its start (least) but not its end (greatest)
    await apply(storage, "o", [event("o", "o-late", -100)])
    journeys = await storage.load_journeys("o")
    assert [j.session_id for j in journeys] == ["o-late", "o-early", "o-mid"]
    late = journeys[0]
    assert (late.started_at, late.updated_at) == (
        BASE_TIME - timedelta(seconds=100),
        BASE_TIME + timedelta(seconds=1100),
    )
    assert touch_times(late)[-1] == BASE_TIME - timedelta(seconds=100)  # appended as it came
    assert all(
        j.started_at.tzinfo is not None and j.updated_at.tzinfo is not None for j in journeys
    )
    assert await storage.load_journeys("nobody") == []


# ------------------------------------------------------------------------------- scores


def factor_dicts(score):
    return [
        {"name": f.name, "value": f.value, "contribution": f.contribution} for f in score.factors
    ]


async def test_a_scoring_is_read_whole_or_not_at_all(storage, storage_url):
    # Each record stores four predictions in one transaction; a reader on another connection
    # must never see some of them without the others (the e2e insights test once did on SQLite).
    now = BASE_TIME + DAY
    scores = tuple(Score(model, 10.0, 0.5, ()) for model in MODEL_TYPES)
    visitors = [f"race-{i}" for i in range(150)]
    for fp in visitors:
        await apply(storage, fp, [event(fp, f"{fp}-s", 0)])
    seen: list[int] = []
    written = 0

    async def read_while_written(reader):
        while written < len(visitors):
            seen.append(len(await reader.recent_predictions(visitors[written], 1)))
            await trio.sleep(0)

    async with open_storage(storage_url) as reader, trio.open_nursery() as nursery:
        nursery.start_soon(read_while_written, reader)
        for fp in visitors:
            await storage.record_scores([ScoreRecord(fp, now, "new", scores)])
            written += 1
    assert seen and set(seen) <= {0, 4}, sorted(set(seen))


async def test_recorded_scores_are_predictions_and_profile_columns(storage, scoring):
    events = visitor_events()
    await apply(storage, "v", events)
    await apply(storage, "bystander", [event("bystander", "b-s1", 0)])
    state = (await storage.load_profiles(["v"]))["v"]
    now = BASE_TIME + 2 * DAY
    record = score_record(state, now, scoring)
    assert {s.model_type for s in record.recorded} == set(MODEL_TYPES)  # first scores: all recorded
    other = score_record((await storage.load_profiles(["bystander"]))["bystander"], now, scoring)
    await storage.record_scores([record, other])

    predictions = await storage.recent_predictions("v", 10)
    assert len(predictions) == 4
    by_model = {p.model_type: p for p in predictions}
    for score in record.recorded:
        stored = by_model[score.model_type]
        assert stored.prediction_value == pytest.approx(score.value)
        assert stored.confidence_score == pytest.approx(score.confidence)
        assert stored.factors == factor_dicts(score)
        assert stored.model_version == "fixed"
        assert stored.created_at == now
    profile = (await storage.load_profiles(["v"]))["v"]
    assert profile.segment == record.segment
    assert profile.scores == pytest.approx({s.model_type: s.value for s in record.recorded})
    assert without_updated_at(attrs.evolve(profile, segment=None, scores={})) == without_updated_at(
        state
    )

    # a later record of one model: a new row for it, its column moves, the others stay
    later = now + timedelta(hours=1)
    engagement = Score(
        ENGAGEMENT, 42.5, 0.5, (Factor("sessions", 2.0, 40.0), Factor("recency", 0.5, 2.5))
    )
    await storage.record_scores([ScoreRecord("v", later, "engaged", (engagement,), state.version)])
    latest = await storage.recent_predictions("v", 1)
    assert latest[0].model_type == ENGAGEMENT
    assert {p.model_type for p in latest} == set(MODEL_TYPES)
    assert latest[0] == attrs.evolve(
        latest[0],
        prediction_value=42.5,
        confidence_score=0.5,
        created_at=later,
        factors=[
            {"name": "sessions", "value": 2.0, "contribution": 40.0},
            {"name": "recency", "value": 0.5, "contribution": 2.5},
        ],
    )
    assert all(p.created_at == now for p in latest[1:])
    profile = (await storage.load_profiles(["v"]))["v"]
    assert profile.segment == "engaged"
    assert profile.scores[ENGAGEMENT] == 42.5
    assert {m: profile.scores[m] for m in (LEAD, CHURN, PRICE_SENSITIVITY)} == pytest.approx(
        {s.model_type: s.value for s in record.recorded if s.model_type != ENGAGEMENT}
    )

    # a record of nothing: only segment and scored_at change
    await storage.record_scores(
        [ScoreRecord("v", later + timedelta(hours=1), "churned", (), state.version)]
    )
    assert len(await storage.recent_predictions("v", 10)) == 5
    after = (await storage.load_profiles(["v"]))["v"]
    assert (after.segment, after.scores) == ("churned", profile.scores)

    # a third engagement row: each model's latest ``limit`` rows, all newest first
    latest_at = later + timedelta(hours=2)
    await storage.record_scores(
        [
            ScoreRecord(
                "v", latest_at, "engaged", (attrs.evolve(engagement, value=50.0),), state.version
            )
        ]
    )
    two = await storage.recent_predictions("v", 2)
    assert [(p.model_type, p.created_at) for p in two if p.model_type == ENGAGEMENT] == [
        (ENGAGEMENT, latest_at),
        (ENGAGEMENT, later),
    ]
    assert len(two) == 5  # 2 engagement rows, 1 of each other model (only one recorded)
    assert [p.created_at for p in two] == sorted((p.created_at for p in two), reverse=True)
    assert [p.prediction_value for p in two[:2]] == [50.0, 42.5]
    assert len(await storage.recent_predictions("v", 10)) == 6
    assert {p.model_type for p in await storage.recent_predictions("bystander", 10)} == set(
        MODEL_TYPES
    )
    assert await storage.recent_predictions("nobody", 10) == []
    # the returned state of a later write carries the recorded scores and segment
    state = await apply(storage, "v", [event("v", "v-s3", 3 * 86400)])
    assert (state.segment, state.scores[ENGAGEMENT], state.total_sessions) == ("engaged", 50.0, 3)


async def test_an_older_result_and_an_unknown_visitors_result_change_nothing(storage):
    """Two instances scoring one visitor: the result computed later wins, whichever arrives last
    (across calls or within one); a result for a visitor with no profile stores neither a
    prediction nor a profile."""
    await apply(storage, "v", [event("v", "v-s1", 0)])
    await apply(storage, "w", [event("w", "w-s1", 0)])
    now = BASE_TIME + DAY
    newer = Score(ENGAGEMENT, 60.0, 0.5, (Factor("sessions", 1.0, 60.0),))
    older = attrs.evolve(newer, value=10.0)
    await storage.record_scores([ScoreRecord("v", now, "engaged", (newer,))])
    await storage.record_scores(
        [
            ScoreRecord("v", now - timedelta(minutes=5), "churned", (older,)),
            ScoreRecord("ghost", now, "new", (newer,)),
        ]
    )
    # two results for one visitor in one call: only the newer counts, whichever comes first
    later = now + timedelta(minutes=5)
    await storage.record_scores(
        [ScoreRecord("w", later, "engaged", (newer,)), ScoreRecord("w", now, "churned", (older,))]
    )

    profile = (await storage.load_profiles(["v"]))["v"]
    assert (profile.segment, profile.scores) == ("engaged", {ENGAGEMENT: 60.0})
    assert [p.prediction_value for p in await storage.recent_predictions("v", 10)] == [60.0]
    assert await storage.load_profiles(["ghost"]) == {}
    assert await storage.recent_predictions("ghost", 10) == []
    profile = (await storage.load_profiles(["w"]))["w"]
    assert (profile.segment, profile.scores) == ("engaged", {ENGAGEMENT: 60.0})
    assert [p.prediction_value for p in await storage.recent_predictions("w", 10)] == [60.0]


async def test_profiles_to_rescore_never_scored_first_then_oldest(storage):
    for fp in ("n1", "o2", "o1", "n2", "o3"):
        await apply(storage, fp, [event(fp, f"{fp}-s", 0)])
    t1, t2, t3 = (BASE_TIME + DAY + timedelta(hours=h) for h in (1, 2, 3))
    score = Score(CHURN, 10.0, 0.1, (Factor("days_absent", 1.0, 10.0),))
    # recorded out of order: the order comes from scored_at
    await storage.record_scores(
        [ScoreRecord("o2", t2, "new", (score,)), ScoreRecord("o3", t3, "new", (score,))]
    )
    await storage.record_scores([ScoreRecord("o1", t1, "new", ())])

    due = await storage.profiles_to_rescore(t3, 10)
    names = [p.user_fingerprint for p in due]
    assert sorted(names[:2]) == ["n1", "n2"] and names[2:] == [
        "o1",
        "o2",
    ]  # o3 scored at t3: not before t3
    assert [
        p.user_fingerprint
        for p in await storage.profiles_to_rescore(t3 + timedelta(microseconds=1), 10)
    ][2:] == ["o1", "o2", "o3"]
    assert [p.user_fingerprint for p in await storage.profiles_to_rescore(t1, 10)][2:] == []
    limited = [p.user_fingerprint for p in await storage.profiles_to_rescore(t3, 3)]
    assert sorted(limited[:2]) == ["n1", "n2"] and limited[2:] == ["o1"]
    assert len(await storage.profiles_to_rescore(t3, 1)) == 1
    by_name = {p.user_fingerprint: p for p in due}
    assert by_name == {fp: p for fp, p in (await storage.load_profiles(names)).items()}
    assert (by_name["o2"].segment, by_name["o2"].scores) == ("new", {CHURN: 10.0})
    assert (by_name["n1"].segment, by_name["n1"].scores) == (None, {})

    # scoring the never-scored ones makes them wait their turn by scored_at like the rest
    await storage.record_scores(
        [
            ScoreRecord("n1", t1 + timedelta(minutes=30), "new", ()),
            ScoreRecord("n2", t1 - timedelta(minutes=30), "new", ()),
        ]
    )
    assert [p.user_fingerprint for p in await storage.profiles_to_rescore(t3, 10)] == [
        "n2",
        "o1",
        "n1",
        "o2",
    ]


async def test_a_profile_write_makes_its_scores_due_until_that_version_is_recorded(
    storage, scoring
):
    """Migration 0008: each write raises ``version``; a record stores the version it scored. What
    a process leaves between a profile write and the scorer's record is found again, per
    partition, and a result of an earlier version never overwrites a later one's."""
    from revivatech_actors.domain.partitions import partition_of

    visitors = [f"due-{i}" for i in range(12)]
    for fp in visitors:
        await apply(storage, fp, [event(fp, f"{fp}-s", 0)])
    assert sorted(await storage.unscored_profiles(range(4), 4)) == sorted(visitors)
    some = [0, 2]
    assert sorted(await storage.unscored_profiles(some, 4)) == sorted(
        fp for fp in visitors if partition_of(fp, 4) in some
    )
    assert await storage.unscored_profiles([], 4) == []

    first = (await storage.load_profiles(["due-0"]))["due-0"]
    assert first.version == 1
    now = BASE_TIME + DAY
    await storage.record_scores([score_record(first, now, scoring)])
    assert "due-0" not in await storage.unscored_profiles(range(4), 4)
    assert len(await storage.unscored_profiles(range(4), 4)) == len(visitors) - 1

    # a second write makes it due again; a later result of the first version records its scores
    # (the newest known) but leaves the profile due
    second = await apply(
        storage, "due-0", [event("due-0", "due-0-s2", 3600, "booking_completed", value=90.0)]
    )
    assert second.version == 2
    assert "due-0" in await storage.unscored_profiles(range(4), 4)
    rescored = ScoreRecord("due-0", now + timedelta(minutes=10), "rescored", (), first.version)
    await storage.record_scores([rescored])
    assert "due-0" in await storage.unscored_profiles(range(4), 4)
    assert (await storage.load_profiles(["due-0"]))["due-0"].segment == "rescored"

    # the second version's record clears it; a first version's result timed later changes nothing
    fresh = score_record(second, now + timedelta(minutes=30), scoring)
    await storage.record_scores([fresh])
    assert "due-0" not in await storage.unscored_profiles(range(4), 4)
    stale = ScoreRecord(
        "due-0",
        now + timedelta(hours=1),
        "stale",
        (Score(ENGAGEMENT, 1.0, 0.1, ()),),
        first.version,
    )
    await storage.record_scores([stale])
    assert "due-0" not in await storage.unscored_profiles(range(4), 4)
    assert (await storage.load_profiles(["due-0"]))["due-0"].segment == fresh.segment
    assert all(p.prediction_value != 1.0 for p in await storage.recent_predictions("due-0", 10))
    # of two results in one call, the later version wins whatever their times
    third = await apply(storage, "due-1", [event("due-1", "due-1-s2", 60)])
    await storage.record_scores(
        [
            ScoreRecord("due-1", now + timedelta(hours=2), "old", (), third.version - 1),
            ScoreRecord("due-1", now, "new", (), third.version),
        ]
    )
    assert "due-1" not in await storage.unscored_profiles(range(4), 4)
    assert (await storage.load_profiles(["due-1"]))["due-1"].segment == "new"


async def test_a_prediction_names_the_model_that_made_it(storage):
    await apply(storage, "v", [event("v", "v-s", 0)])
    learned = Score(LEAD, 42.0, 0.5, (), model_version="learned-0123456789ab")
    fixed = Score(CHURN, 7.0, 0.5, ())
    await storage.record_scores([ScoreRecord("v", BASE_TIME + DAY, "new", (learned, fixed), 1)])
    stored = {p.model_type: p.model_version for p in await storage.recent_predictions("v", 5)}
    assert stored == {LEAD: "learned-0123456789ab", CHURN: "fixed"}
