"""The profiles actor: activation, ordering, passivation, live reads and writes, on real storage."""

from __future__ import annotations

import uuid
from datetime import timedelta

import attrs
import psycopg
import pytest
import trio

from revivatech_actors.actors.profiles import CHUNK_EVENTS, URGENT_WRITE_CHUNK, ProfilesActor, VisitorActor, _chunks
from revivatech_actors.domain.profiles import ProfileState, delta_from_events
from revivatech_actors.storage import open_storage

from .helpers import BASE_TIME, make_event, query


@pytest.fixture
async def storage(storage_url):
    async with open_storage(storage_url) as storage:
        await storage.migrate()
        yield storage


def visit(visitor: str, n: int, *, session: str | None = None, event_type: str = "page_view", **fields):
    return make_event(n, user_fingerprint=visitor, session_id=session or f"{visitor}-s", event_type=event_type, **fields)


class Rig:
    """A ProfilesActor fed through a channel, as the batcher feeds it."""

    def __init__(self, storage, **options) -> None:
        self.storage = storage
        self.send, receive = trio.open_memory_channel(64)
        options.setdefault("flush_interval", 0.05)
        self.actor = ProfilesActor(storage, receive, **options)
        self.fed = 0

    async def feed(self, events) -> None:
        await self.storage.write_batch(events)  # stored first, as the batcher does
        await self.send.send(list(events))
        self.fed += len(events)

    async def settle(self) -> None:
        """Wait until everything fed was handled and flushed."""
        with trio.fail_after(5):
            while self.actor.activity.handled < self.fed or any(
                a.pending is not None for a in (*self.actor._active.values(), *self.actor._retiring.values())
            ):
                await trio.sleep(0.02)


def test_a_visitor_actor_applies_events_in_order_and_keeps_them_pending_until_written():
    actor = VisitorActor("v", stored=ProfileState(user_fingerprint="v", total_events=10, total_sessions=1),
                         known_sessions=("old",), keys_loaded=True)
    assert actor.receive(visit("v", 0, session="old"), now=1.0) is True  # the first pending event
    assert actor.receive(visit("v", 5, session="new", event_type="booking_started"), now=1.0) is False
    actor.receive(visit("v", 9, session="new", event_type="booking_completed", value=80.0), now=2.0)
    live = actor.live()
    assert (live.total_events, live.bookings_started, live.total_bookings, live.total_value) == (13, 1, 1, 80.0)
    assert live.total_sessions == 2  # "new" is not known to storage yet: counted; "old" is
    assert live.last_seen == BASE_TIME + timedelta(seconds=9)
    assert actor.stored.total_events == 10  # the stored state moves only when a write commits
    assert len(actor.pending) == 3 and actor.last_message == 2.0
    in_flight = actor.begin_write()
    assert actor.pending is None and actor.inflight is in_flight and actor.live().total_events == 13
    assert actor.receive(visit("v", 10, session="new"), now=3.0) is True  # arrives while the write is in flight
    assert actor.live().total_events == 14
    actor.written(delta_from_events("v", in_flight), ProfileState(user_fingerprint="v", total_events=13, total_sessions=2))
    assert actor.inflight is None and "new" in actor.known_sessions
    assert (actor.live().total_events, actor.live().total_sessions) == (14, 2)


def test_a_write_cut_short_goes_into_the_next_one():
    actor = VisitorActor("v")
    actor.receive(visit("v", 0), now=1.0)
    actor.begin_write()
    actor.receive(visit("v", 1), now=2.0)
    actor.receive(visit("v", 2), now=2.0)
    actor.resume()  # as after a crash of the profiles actor during the write
    assert actor.inflight is None and [e.timestamp for e in actor.pending] == [visit("v", n).timestamp for n in range(3)]


def test_write_chunks_are_bounded_by_visitors_and_by_events():
    def visitor(n: int, events: int) -> VisitorActor:
        actor = VisitorActor(f"v{n}")
        for i in range(events):
            actor.receive(make_event(i, user_fingerprint=actor.user_fingerprint), now=0.0)
        return actor

    def sizes(actors, visitors):
        return [[len(a.pending) for a in chunk] for chunk in _chunks(actors, visitors)]

    few = [visitor(n, 2) for n in range(7)]
    assert sizes(few, 3) == [[2, 2, 2], [2, 2, 2], [2]]
    big = CHUNK_EVENTS // 2
    many = [visitor(0, big), visitor(1, big), visitor(2, 1), visitor(3, CHUNK_EVENTS + 5), visitor(4, 1)]
    # at most CHUNK_EVENTS a chunk; a visitor with more than that is a chunk of its own
    assert sizes(many, 2000) == [[big, big], [1], [CHUNK_EVENTS + 5], [1]]
    assert [a.user_fingerprint for chunk in _chunks(many, 2000) for a in chunk] == ["v0", "v1", "v2", "v3", "v4"]
    assert list(_chunks([], 50)) == []


async def test_events_reach_the_profile_row_after_a_write(storage, storage_url):
    to_scorer, from_profiles = trio.open_memory_channel(16)
    rig = Rig(storage, scorer=to_scorer)
    async with trio.open_nursery() as nursery:
        await nursery.start(rig.actor.run)
        await rig.feed([visit("a", 0), visit("a", 1), visit("b", 2)])
        await rig.settle()
        assert (await rig.actor.live_profile("a")).total_sessions == 1
        rig.actor.request_stop()
    rows = dict(query(storage_url, "SELECT user_fingerprint, total_events FROM user_behavior_profiles"))
    assert rows == {"a": 2, "b": 1}
    assert rig.actor.stats.activations == 2
    written = from_profiles.receive_nowait()  # the scorer hears of every written visitor
    assert sorted(written) == ["a", "b"]


async def test_insights_see_an_event_before_any_write(storage):
    rig = Rig(storage, flush_interval=60)  # no write during the test
    async with trio.open_nursery() as nursery:
        await nursery.start(rig.actor.run)
        await rig.feed([visit("fresh", 0, event_type="booking_started")])
        with trio.fail_after(2):
            while rig.actor.activity.handled < 1:
                await trio.sleep(0.01)
        live = await rig.actor.live_profile("fresh")
        assert (live.total_events, live.total_sessions, live.days_active, live.bookings_started) == (1, 1, 1, 1)
        assert await rig.actor.live_profile("nobody") is None
        assert [j.session_id for j in await rig.actor.live_journeys("fresh")] == ["fresh-s"]
        rig.actor.request_stop()


async def test_one_visitors_events_are_applied_in_order(storage):
    rig = Rig(storage)
    events = [visit("ordered", n, event_type=f"step_{n}") for n in range(30)]
    async with trio.open_nursery() as nursery:
        await nursery.start(rig.actor.run)
        for n in range(0, 30, 7):
            await rig.feed(events[n : n + 7])
        await rig.settle()
        journeys = await rig.actor.live_journeys("ordered")
        rig.actor.request_stop()
    assert [p["type"] for p in journeys[0].touchpoints] == [f"step_{n}" for n in range(30)]


async def test_a_passivated_visitor_is_reactivated_from_storage(storage, storage_url):
    rig = Rig(storage, max_active=1)
    async with trio.open_nursery() as nursery:
        await nursery.start(rig.actor.run)
        await rig.feed([visit("a", 0)])
        await rig.feed([visit("b", 1)])  # a is passivated: only one may be active
        await rig.settle()
        assert rig.actor.active_count == 1 and rig.actor.actor_of("a") is None
        assert (await rig.actor.live_profile("a")).total_events == 1  # read from storage
        await rig.feed([visit("a", 2, session="a-s2")])  # reactivated: its row comes back with the write
        await rig.settle()
        state = await rig.actor.live_profile("a")
        assert (state.total_events, state.total_sessions) == (2, 2)
        rig.actor.request_stop()
    assert rig.actor.stats.passivations >= 2 and rig.actor.stats.activations == 3
    assert query(storage_url, "SELECT total_events, total_sessions FROM user_behavior_profiles WHERE user_fingerprint = %s", ("a",)) == [(2, 2)]


async def test_idle_visitors_are_passivated(storage):
    rig = Rig(storage, idle_timeout=0.1)
    async with trio.open_nursery() as nursery:
        await nursery.start(rig.actor.run)
        await rig.feed([visit("idle", 0)])
        await rig.settle()
        with trio.fail_after(3):
            while rig.actor.active_count:
                await trio.sleep(0.02)
        rig.actor.request_stop()
    assert rig.actor.stats.passivations == 1


async def test_a_closed_inbox_ends_the_actor_after_a_last_write(storage, storage_url):
    rig = Rig(storage, flush_interval=60)  # only the final write
    async with trio.open_nursery() as nursery:
        await nursery.start(rig.actor.run)
        await rig.feed([visit("late", 0), visit("late", 1)])
        await rig.send.aclose()
    assert query(storage_url, "SELECT total_events FROM user_behavior_profiles WHERE user_fingerprint = %s", ("late",)) == [(2,)]


async def test_two_instances_updating_one_visitor_give_exact_counts(postgres_url):
    """Two profile actors on two connections (as two instances would be), one visitor's events
    split between them: the profile row adds up exactly."""
    events = [visit("shared", n, session=f"shared-s{n % 4}") for n in range(200)]
    events = [attrs.evolve(e, event_id=str(uuid.uuid4())) for e in events]
    async with open_storage(postgres_url) as first, open_storage(postgres_url) as second:
        await first.migrate()
        rigs = [Rig(first), Rig(second)]
        async with trio.open_nursery() as nursery:
            for rig in rigs:
                await nursery.start(rig.actor.run)
            for n in range(0, 200, 10):
                await rigs[(n // 10) % 2].feed(events[n : n + 10])
            for rig in rigs:
                await rig.settle()
                rig.actor.request_stop()
    row = query(postgres_url, "SELECT total_events, total_page_views, total_sessions FROM user_behavior_profiles")
    assert row == [(200, 200, 4)]
    assert delta_from_events("shared", events).events == 200


async def test_a_large_batch_is_handled_whole_even_when_the_idle_check_falls_due(storage):
    """Handling yields between slices of visitors; the idle check's deadline must not cut a
    batch short (it once did: the rest of the batch was lost)."""
    rig = Rig(storage, flush_interval=60, idle_timeout=0.0001)
    events = [visit(f"many-{n}", n) for n in range(1000)]  # 1,000 visitors: five slices
    async with trio.open_nursery() as nursery:
        await nursery.start(rig.actor.run)
        await rig.send.send(events)  # straight to the actor: storage is not needed for this
        with trio.fail_after(3):
            while rig.actor.activity.handled < len(events):
                await trio.sleep(0.01)
        rig.actor.request_stop()
    assert rig.actor.stats.activations == 1000
    assert rig.actor.stats.profiles_written == 1000


async def test_too_many_unwritten_events_start_a_write_whatever_the_pacing(storage, storage_url):
    rig = Rig(storage, flush_interval=60, max_unwritten_events=10)  # the interval alone would not write
    async with trio.open_nursery() as nursery:
        await nursery.start(rig.actor.run)
        await rig.feed([visit("busy", n) for n in range(11)])
        with trio.fail_after(3):
            while rig.actor.stats.writes < 1:
                await trio.sleep(0.01)
        assert query(storage_url, "SELECT total_events FROM user_behavior_profiles") == [(11,)]
        assert rig.actor.stats_json()["unwrittenEvents"] == 0  # what operators watch
        await rig.feed([visit("busy", 20), visit("other", 21)])
        with trio.fail_after(3):
            while rig.actor.activity.handled < rig.fed:
                await trio.sleep(0.01)
        assert (rig.actor.stats_json()["unwrittenEvents"], rig.actor.stats_json()["maxUnwrittenEvents"]) == (2, 10)
        rig.actor.request_stop()



async def test_the_last_write_of_a_stop_runs_on_two_connections(postgres_url):
    """From the stop on, chunks go to ``storage`` and ``stop_writer`` at once: with the first
    chunk held up by a row lock, the second still commits; then every profile is exact."""
    visitors = ["a-locked", *(f"v{n:04d}" for n in range(URGENT_WRITE_CHUNK + 10))]  # two chunks
    async with open_storage(postgres_url) as storage, open_storage(postgres_url) as stop_writer:
        await storage.migrate()
        await storage.write_batch([visit("a-locked", 0)])
        first = Rig(storage)
        async with trio.open_nursery() as nursery:  # a stored profile row for the lock to hold
            await nursery.start(first.actor.run)
            await first.send.send([visit("a-locked", 0)])
            await first.send.aclose()
        rig = Rig(storage, stop_writer=stop_writer, flush_interval=60)  # only the stop's write
        events = [visit(fp, 1) for fp in visitors]
        with psycopg.connect(postgres_url) as lock:
            lock.execute("SELECT 1 FROM user_behavior_profiles WHERE user_fingerprint = 'a-locked' FOR UPDATE")
            async with trio.open_nursery() as nursery:
                await nursery.start(rig.actor.run)
                await rig.feed(events)
                with trio.fail_after(5):
                    while rig.actor.activity.handled < rig.fed:
                        await trio.sleep(0.01)
                await rig.send.aclose()  # the stop: one write of two chunks, the first blocked
                try:
                    with trio.fail_after(5):
                        while query(postgres_url, "SELECT count(*) FROM user_behavior_profiles")[0][0] < 12:
                            await trio.sleep(0.05)
                    rows = query(postgres_url, "SELECT total_events FROM user_behavior_profiles "
                                               "WHERE user_fingerprint = 'a-locked'")
                    assert rows == [(1,)]  # the first chunk still waits for the lock
                finally:
                    lock.rollback()  # also when the test fails: the write in its thread can end
    rows = query(postgres_url, "SELECT count(*), sum(total_events) FROM user_behavior_profiles")
    assert rows == [(len(visitors), len(visitors) + 1)]

@pytest.mark.parametrize(
    ("waiting", "seconds_per_visitor", "idle", "due"),
    [
        (0, 0.001, 100.0, False),  # nothing to write
        (1, 0.0, 0.0, True),  # cost unknown yet: write every interval
        (500, 60e-6, 1.0, True),  # 30 ms of work after 1 s: within 10 %
        (95_000, 100e-6, 1.0, False),  # 9.5 s of work: wait...
        (95_000, 100e-6, 85.5, True),  # ... until it is 10 % of the time since the last write
    ],
)
def test_writes_are_paced_by_their_expected_cost(waiting, seconds_per_visitor, idle, due):
    actor = ProfilesActor(None, None, max_write_share=0.1)
    actor._unwritten_visitors = waiting
    actor._seconds_per_visitor = seconds_per_visitor
    assert actor._write_due(idle) is due
