"""``domain.journeys.merge_journey``: the journey merge rule, as SQLite applies it in Python and
PostgreSQL in SQL (the contract tests in test_storage_profiles.py run both engines)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from revivatech_actors.domain.journeys import JourneyRow, merge_journey

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def at(minutes: float) -> datetime:
    return T0 + timedelta(minutes=minutes)


def row(
    start: float,
    end: float,
    *,
    points: int = 1,
    stage: str | None = "awareness",
    first: tuple[str | None, float | None] = (None, None),
    last: tuple[str | None, float | None] = (None, None),
) -> JourneyRow:
    return JourneyRow(
        touchpoints=[{"type": "page_view", "at": at(start + i)} for i in range(points)],
        stage=stage,
        first_source=first[0],
        first_source_at=None if first[1] is None else at(first[1]),
        last_source=last[0],
        last_source_at=None if last[1] is None else at(last[1]),
        started_at=at(start),
        last_at=at(end),
    )


def test_a_new_session_is_the_new_row_cut_to_the_touchpoint_limit():
    new = row(0, 5, points=4)
    merged = merge_journey(None, new, max_touchpoints=3)
    assert merged.touchpoints == new.touchpoints[:3]
    assert (merged.started_at, merged.last_at, merged.stage) == (
        new.started_at,
        new.last_at,
        "awareness",
    )


def test_touchpoints_are_appended_only_while_there_is_room():
    old = row(0, 2, points=2)
    merged = merge_journey(old, row(3, 6, points=3), max_touchpoints=4)
    assert len(merged.touchpoints) == 4
    assert merged.touchpoints[:2] == old.touchpoints
    assert merge_journey(merged, row(7, 8), max_touchpoints=4).touchpoints == merged.touchpoints
    assert len(old.touchpoints) == 2  # pure: the stored row is not changed


def test_the_stage_only_rises_and_a_session_after_a_booking_is_retention():
    old = row(0, 1, stage="decision")
    assert merge_journey(old, row(2, 3, stage="consideration"), 10).stage == "decision"
    assert merge_journey(old, row(2, 3, stage="booking"), 10).stage == "booking"
    booked = at(-5)
    assert merge_journey(None, row(0, 1, stage="decision"), 10, booked).stage == "retention"
    assert merge_journey(None, row(0, 1, stage="booking"), 10, booked).stage == "booking"
    # the stored start counts: a booking before the session's first events is not after it
    assert merge_journey(row(-10, 1, stage="awareness"), row(0, 1), 10, booked).stage == "awareness"


def test_first_and_last_sources_come_from_the_earliest_and_latest_touches():
    old = row(0, 4, first=("google", 1), last=("google", 4))
    merged = merge_journey(old, row(2, 9, first=("mail", 2), last=("mail", 9)), 10)
    assert (merged.first_source, merged.last_source) == ("google", "mail")
    earlier = merge_journey(old, row(-3, 0, first=("ads", -3), last=("ads", -3)), 10)
    assert (earlier.first_source, earlier.last_source) == ("ads", "google")
    assert (earlier.started_at, earlier.last_at) == (at(-3), at(4))
    unsourced = merge_journey(old, row(5, 6), 10)
    assert (unsourced.first_source, unsourced.last_source) == ("google", "google")
    tie = merge_journey(old, row(4, 4, first=("tie", 4), last=("tie", 4)), 10)
    assert tie.last_source == "tie"  # of equal times, the one written last
