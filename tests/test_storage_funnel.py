"""``Storage.funnel`` on both engines against hand-computed cases: step order, the whole-funnel
window, per-step windows, the entry range, repeated steps and events stamped at the same time."""

from __future__ import annotations

from datetime import timedelta

import pytest

from revivatech_actors.domain.funnel import FunnelQuery, FunnelStep
from revivatech_actors.storage import open_storage

from .helpers import BASE_TIME, make_event

T = BASE_TIME
DAY = 86400.0
A, B, C, D = "page_view", "service_viewed", "booking_started", "booking_completed"

#: visitor -> [(seconds after T, event type)]
HISTORY = {
    "v1": [(0, A), (60, B), (120, C), (600, D)],  # the whole way
    "v2": [(0, A), (30, B), (7200, C)],  # C two hours in
    "v3": [(0, B), (10, A)],  # B before A: enters at A, no B after
    "v4": [(0, A), (5, A), (100, B)],  # enters at the first A
    "v5": [(-100, A), (20, A), (50, B)],  # the first A is before the range: enters at +20
    "v6": [(0, A), (2 * DAY, B)],  # B past a one-day window
    "v7": [(0, B), (10, C)],  # never enters
}


@pytest.fixture
async def storage(storage_url):
    async with open_storage(storage_url) as storage:
        await storage.migrate()
        events = [
            make_event(
                n,
                user_fingerprint=fp,
                session_id=f"{fp}-s",
                event_type=kind,
                timestamp=T + timedelta(seconds=at),
            )
            for fp, history in HISTORY.items()
            for n, (at, kind) in enumerate(history)
        ]
        await storage.write_batch(events)
        yield storage


async def funnel(storage, q: FunnelQuery) -> list[FunnelStep]:
    return await storage.funnel(q, timeout=30)


def query(steps, window=DAY, windows=None, start=T, end=T + timedelta(days=1)) -> FunnelQuery:
    return FunnelQuery(tuple(steps), start, end, window, windows)


async def test_ordered_steps_within_the_window(storage):
    assert await funnel(storage, query([A, B, C, D])) == [
        FunnelStep(6, None),  # v1..v6
        FunnelStep(4, 45.0),  # v1 60, v2 30, v4 100, v5 30 -> median of 30, 30, 60, 100
        FunnelStep(2, 3615.0),  # v1 60, v2 7170
        FunnelStep(1, 480.0),  # v1
    ]


async def test_the_window_counts_from_entering_and_includes_its_end(storage):
    steps = await funnel(storage, query([A, B, C], window=100))
    assert [s.visitors for s in steps] == [
        6,
        4,
        0,
    ]  # v4's B is exactly 100 s in; v1's C at 120 is out


async def test_per_step_windows_count_from_the_previous_step(storage):
    steps = await funnel(storage, query([A, B, C, D], windows=(3600, 3600, 3600)))
    assert steps == [
        FunnelStep(6, None),
        FunnelStep(4, 45.0),
        FunnelStep(1, 60.0),
        FunnelStep(1, 480.0),
    ]
    steps = await funnel(storage, query([A, B, C, D], windows=(59, 3600, 3600)))
    assert [s.visitors for s in steps] == [
        6,
        2,
        0,
        0,
    ]  # B within 59 s: v2 and v5 (v1 60, v4 100 are out)


async def test_the_range_selects_who_enters_later_steps_may_fall_after_it(storage):
    steps = await funnel(
        storage, query([A, B], start=T - timedelta(seconds=200), end=T + timedelta(seconds=1))
    )
    # entries in [T-200, T+1): v1, v2, v3? no (its A is at +10), v4, v5 (at -100), v6
    assert steps == [
        FunnelStep(5, None),
        FunnelStep(4, 80.0),
    ]  # gaps 60, 30, 100 and v5's 150 (from -100)
    assert (await funnel(storage, query([A, B], start=T + timedelta(seconds=11))))[0] == FunnelStep(
        1, None
    )  # v5


async def test_a_repeated_step_needs_another_later_event(storage):
    assert await funnel(storage, query([A, A])) == [FunnelStep(6, None), FunnelStep(1, 5.0)]  # v4


async def test_no_entries_count_zero_everywhere(storage):
    assert await funnel(storage, query(["nothing", A])) == [
        FunnelStep(0, None),
        FunnelStep(0, None),
    ]


async def test_events_stamped_at_the_same_time_keep_the_order_of_their_ids(storage_url):
    async with open_storage(storage_url) as storage:
        await storage.migrate()
        at = T + timedelta(hours=1)
        ids = [
            "01a00000-0000-7000-8000-000000000001",
            "01a00000-0000-7000-8000-000000000002",
            "01a00000-0000-7000-8000-000000000003",
        ]
        await storage.write_batch(
            [
                make_event(
                    0,
                    event_id=ids[0],
                    user_fingerprint="w",
                    session_id="w",
                    event_type=A,
                    timestamp=at,
                ),
                make_event(
                    1,
                    event_id=ids[1],
                    user_fingerprint="w",
                    session_id="w",
                    event_type=B,
                    timestamp=at,
                ),
                make_event(
                    2,
                    event_id=ids[2],
                    user_fingerprint="w",
                    session_id="w",
                    event_type=A,
                    timestamp=at,
                ),
            ]
        )
        assert await funnel(storage, query([A, B])) == [FunnelStep(1, None), FunnelStep(1, 0.0)]
        assert await funnel(storage, query([A, B, A])) == [
            FunnelStep(1, None),
            FunnelStep(1, 0.0),
            FunnelStep(1, 0.0),
        ]
        assert await funnel(storage, query([B, A, B])) == [
            FunnelStep(1, None),
            FunnelStep(1, 0.0),
            FunnelStep(0, None),
        ]


async def test_a_funnel_longer_than_its_timeout_is_cancelled_by_the_database(storage):
    from revivatech_actors.storage import QueryTimeout

    more = [
        make_event(
            n,
            user_fingerprint=f"x{n % 500}",
            session_id=f"x{n % 500}",
            event_type=(A, B)[n % 2],
            timestamp=T + timedelta(seconds=n % 3000),
        )
        for n in range(6000)
    ]
    await storage.write_batch(more)
    with pytest.raises(QueryTimeout, match="took longer than 0.001 s"):
        await storage.funnel(query([A, B, A, B, A, B, A, B, A, B]), timeout=0.001)
    assert (await funnel(storage, query([A, B])))[
        0
    ].visitors == 6 + 250  # the connection still works
