"""The realtime window (``domain.realtime``): pure, driven by a fake clock (seconds since the
epoch)."""

from __future__ import annotations

import pytest

from revivatech_actors.domain.realtime import (
    BUCKET_SECONDS,
    RealtimeWindow,
    ServiceUptime,
    bucket_of,
    public_realtime_document,
)

T0 = 1_800_000_000.0  # a bucket boundary: 1_800_000_000 / 10 is whole


def window(seconds: int = 300, top: int = 10) -> RealtimeWindow:
    return RealtimeWindow(
        seconds,
        page_types=frozenset({"page_view"}),
        conversion_types=frozenset({"booking_completed"}),
        top_pages=top,
    )


def add(
    w: RealtimeWindow,
    at: float,
    user="u1",
    session="s1",
    event_type="page_view",
    page="/home",
    now=None,
):
    w.add_event(user, session, event_type, page, at, at if now is None else now)


def test_bucket_of_cuts_time_in_buckets_of_ten_seconds():
    assert BUCKET_SECONDS == 10
    assert bucket_of(T0) == bucket_of(T0 + 9.999) == bucket_of(T0 + 10) - 1
    assert bucket_of(-0.5) == -1  # floor, not truncation


def test_an_empty_window_reports_zeros_and_no_request_figures():
    f = window().figures(T0)
    assert (f.active_users, f.active_sessions, f.events, f.page_views, f.conversions) == (
        0,
        0,
        0,
        0,
        0,
    )
    assert f.top_pages == () and f.requests == 0
    assert f.avg_response_ms is None and f.error_rate is None


def test_counts_events_page_views_conversions_and_distinct_visitors_and_sessions():
    w = window()
    add(w, T0, "u1", "s1", "page_view", "/home")
    add(w, T0 + 1, "u1", "s1", "page_view", "/prices")
    add(w, T0 + 2, "u1", "s2", "booking_completed", "/book")
    add(w, T0 + 30, "u2", "s3", "page_view", "/home")
    add(w, T0 + 31, "u2", "s3", "click", None)
    f = w.figures(T0 + 40)
    assert (f.active_users, f.active_sessions) == (2, 3)
    assert (f.events, f.page_views, f.conversions) == (5, 3, 1)
    assert f.top_pages == (("/home", 2), ("/prices", 1))  # conversions are not page views


def test_top_pages_are_the_most_viewed_ties_by_url_and_at_most_top_pages():
    w = window(top=2)
    for n, page in enumerate(["/b", "/a", "/c", "/c", "/b", "/c"]):
        add(w, T0 + n, f"u{n}", f"s{n}", page=page)
    assert w.figures(T0 + 10).top_pages == (("/c", 3), ("/b", 2))


def test_everything_leaves_the_window_when_its_bucket_does():
    w = window(seconds=60)
    add(w, T0, "old", "s-old")
    add(w, T0 + 30, "new", "s-new")
    assert (
        w.figures(T0 + 69).active_users == 2
    )  # 69 s later: the window spans 60 s and the filling bucket
    f = w.figures(T0 + 70)  # T0's bucket left the window
    assert (f.active_users, f.active_sessions, f.events, f.page_views) == (1, 1, 1, 1)
    f = w.figures(T0 + 100)
    assert (f.active_users, f.events, f.top_pages) == (0, 0, ())


def test_a_visitor_seen_again_stays_active_from_its_newest_event():
    w = window(seconds=60)
    add(w, T0, "u1", "s1")
    add(w, T0 + 50, "u1", "s1")
    f = w.figures(T0 + 70)  # the first event left; the visitor is still active
    assert (f.active_users, f.active_sessions, f.events) == (1, 1, 1)
    assert w.figures(T0 + 119).active_users == 1 and w.figures(T0 + 120).active_users == 0


def test_a_late_event_counts_in_its_own_bucket_and_does_not_make_a_visitor_newer():
    w = window(seconds=60)
    add(w, T0 + 50, "u1", "s1")
    add(w, T0 + 5, "u1", "s1", now=T0 + 55)  # arrives late, stamped earlier
    add(w, T0 + 5, "u2", "s2", now=T0 + 55)  # a visitor first seen through a late event
    f = w.figures(T0 + 55)
    assert (f.active_users, f.events) == (2, 3)
    f = w.figures(T0 + 70)  # the late events' bucket left: u2 with it, u1 stays (seen at +50)
    assert (f.active_users, f.active_sessions, f.events) == (1, 1, 1)


def test_events_older_than_the_window_are_left_out_and_future_ones_count_as_now():
    w = window(seconds=60)
    add(w, T0 - 3600, "replayed", "s0", now=T0)
    add(w, T0 + 3600, "skewed", "s1", now=T0)
    f = w.figures(T0)
    assert (f.active_users, f.events) == (1, 1)
    assert w.figures(T0 + 69).active_users == 1 and w.figures(T0 + 70).active_users == 0


def test_request_figures_average_time_and_share_of_server_errors():
    w = window(seconds=60)
    w.add_request(0.010, 200, T0)
    w.add_request(0.030, 503, T0 + 1)
    w.add_request(0.020, 404, T0 + 2)  # a client error is not the service's error
    f = w.figures(T0 + 3)
    assert f.requests == 3
    assert f.avg_response_ms == pytest.approx(20.0)
    assert f.error_rate == pytest.approx(1 / 3)
    assert w.figures(T0 + 69).requests == 3 and w.figures(T0 + 70).requests == 0


def test_restore_seeds_the_window_as_if_the_events_had_been_added():
    now = T0 + 70  # a 60-second window: the buckets of T0+10 .. T0+79
    live = window(seconds=60)
    events = [
        (T0 + 15, "u1", "s1", "page_view", "/a"),
        (T0 + 40, "u1", "s2", "booking_completed", "/b"),
        (T0 + 45, "u2", "s3", "page_view", "/a"),
        (T0 + 5, "gone", "s9", "page_view", "/z"),
    ]
    for at, user, session, event_type, page in events:
        live.add_event(user, session, event_type, page, at, now)
    seeded = window(seconds=60)
    b = bucket_of(T0)
    seeded.restore(  # what storage returns for those events (T0+5 is older than the window)
        bucket_counts=[(b + 1, 1, 1, 0), (b + 4, 2, 1, 1), (b, 1, 1, 0)],
        page_views=[(b + 1, "/a", 1), (b + 4, "/a", 1), (b, "/z", 1)],
        users={"u1": b + 4, "u2": b + 4, "gone": b},
        sessions={"s1": b + 1, "s2": b + 4, "s3": b + 4, "s9": b},
        now=now,
    )
    f = seeded.figures(now)
    assert (f.active_users, f.active_sessions, f.events, f.page_views, f.conversions) == (
        2,
        3,
        3,
        2,
        1,
    )
    assert f.top_pages == (("/a", 2),)
    f = seeded.figures(T0 + 80)  # T0+15's bucket left: session s1 with it; u1 stays (seen at T0+40)
    assert (f.active_users, f.active_sessions, f.events, f.top_pages) == (2, 2, 2, (("/a", 1),))
    for at in (T0 + 80, T0 + 109, T0 + 110):  # the clock only moves forward
        assert seeded.figures(at) == live.figures(at)


def test_uptime_is_the_share_of_observed_time_the_service_was_ready():
    up = ServiceUptime(started=T0)
    assert up.percent(T0) == 0.0  # nothing observed yet
    up.observe(True, T0 + 2)  # start-up (2 s) counts as not ready
    assert up.percent(T0 + 2) == 0.0
    up.observe(True, T0 + 10)
    assert up.percent(T0 + 10) == pytest.approx(80.0)
    up.observe(False, T0 + 12)  # changed in between: half of the interval counts
    up.observe(False, T0 + 20)
    assert up.percent(T0 + 20) == pytest.approx(100 * 9 / 20)
    up.observe(True, T0 + 40)
    assert up.percent(T0 + 40) == pytest.approx(100 * 19 / 40)


def test_uptime_of_a_service_ready_from_its_first_observation_at_start_is_100():
    up = ServiceUptime(started=T0)
    up.observe(True, T0)
    assert up.percent(T0) == 100.0
    up.observe(True, T0 + 5)
    assert up.percent(T0 + 5) == 100.0


def test_adding_a_batch_counts_as_adding_each_event():
    from datetime import UTC, datetime

    from .helpers import make_event

    now = T0 + 100
    events = [
        make_event(
            n,
            user_fingerprint=f"u{n % 4}",
            session_id=f"s{n % 6}",
            event_type=("page_view", "booking_completed", "click")[n % 3],
            page_url=None if n % 5 == 0 else f"/p{n % 3}",
            timestamp=datetime.fromtimestamp(T0 + (n * 7) % 130 - 20, UTC),
        )  # late, old and future ones too
        for n in range(60)
    ]
    one_by_one, batched = window(60), window(60)
    for e in events:
        one_by_one.add_event(
            e.user_fingerprint, e.session_id, e.event_type, e.page_url, e.timestamp.timestamp(), now
        )
    batched.add_events(events[:25], now)
    batched.add_events(events[25:], now)
    for at in (now, now + 30, now + 65):
        assert batched.figures(at) == one_by_one.figures(at)
    assert one_by_one.figures(now).events > 0


def test_the_public_document_strips_query_and_fragment_from_top_pages_and_merges_them():
    data = {
        "overview": {"total_events": 9},
        "topPages": [
            {"page_url": "https://x.example/book?email=someone%40example.com", "views": 3},
            {"page_url": "https://x.example/", "views": 3},
            {"page_url": "https://x.example/book#step-2", "views": 2},
            {"page_url": "https://x.example/book", "views": 1},
        ],
    }
    public = public_realtime_document(data)
    assert public["topPages"] == [
        {"page_url": "https://x.example/book", "views": 6},
        {"page_url": "https://x.example/", "views": 3},
    ]
    assert (
        public["overview"] == data["overview"] and data["topPages"][0]["views"] == 3
    )  # the input is untouched


def test_events_per_bucket_span_the_window_oldest_first_empty_buckets_included():
    w = window(60)  # 7 buckets: 6 back and the one filling
    add(w, T0 - 55, "u1")
    add(w, T0 - 20, "u2")
    add(w, T0 - 19, "u3")
    add(w, T0 + 3, "u4")
    f = w.figures(T0 + 5)
    assert f.events_per_bucket == (1, 0, 0, 0, 2, 0, 1)
    assert len(f.events_per_bucket) == w.bucket_count and sum(f.events_per_bucket) == f.events
    # ten seconds on, the oldest bucket leaves and an empty one is filling
    assert w.figures(T0 + 15).events_per_bucket == (0, 0, 0, 2, 0, 1, 0)
