"""The profiles actor: profiles derived from the event log, exactly once, across restarts,
crashes and owners; activation, ordering, passivation, reads and writes, on real storage."""

from __future__ import annotations

import logging
import uuid

import attrs
import psycopg
import pytest
import trio

from revivatech_actors.actors.profiles import URGENT_WRITE_CHUNK, ProfilesActor
from revivatech_actors.domain.partitions import partition_of
from revivatech_actors.messages import PartitionsTaken, StoredBatch
from revivatech_actors.storage import open_storage

from .helpers import make_event, query

PROFILE = (
    "SELECT total_events, total_sessions, total_bookings FROM user_behavior_profiles"
    " WHERE user_fingerprint = %s"
)


@pytest.fixture
async def storage(storage_url):
    async with open_storage(storage_url) as storage:
        await storage.migrate()
        yield storage


def visit(
    visitor: str, n: int, *, session: str | None = None, event_type: str = "page_view", **fields
):
    return make_event(
        n,
        user_fingerprint=visitor,
        session_id=session or f"{visitor}-s",
        event_type=event_type,
        **fields,
    )


class Rig:
    """A ProfilesActor fed through a channel, as the batcher feeds it."""

    def __init__(self, storage, **options) -> None:
        self.storage = storage
        self.send, receive = trio.open_memory_channel(64)
        options.setdefault("flush_interval", 0.05)
        options.setdefault("partitions", 8)
        options.setdefault("lease_ttl", 0.6)
        options.setdefault("poll_interval", 0.05)
        self.actor = ProfilesActor(storage, receive, **options)
        self.fed = 0

    async def feed(self, events) -> None:
        committed = await self.storage.commit_batch(events)  # stored first, as the batcher does
        await self.send.send(StoredBatch(list(events), committed.log_txn))
        self.fed += len(events)

    async def settle(self) -> None:
        """Wait until everything fed was handled and written."""
        with trio.fail_after(5):
            while (
                self.actor.stats.applied_events < self.fed
                or self.actor.stats_json()["unwrittenEvents"]
            ):
                await trio.sleep(0.02)


async def until(condition, timeout: float = 5.0) -> None:
    with trio.fail_after(timeout):
        while not condition():
            await trio.sleep(0.02)


def counted(url: str) -> int:
    return query(url, "SELECT coalesce(sum(total_events), 0) FROM user_behavior_profiles")[0][0]


async def test_events_reach_the_profile_row_with_their_partition_position(storage, storage_url):
    to_scorer, from_profiles = trio.open_memory_channel(16)
    rig = Rig(storage, scorer=to_scorer)
    async with trio.open_nursery() as nursery:
        await nursery.start(rig.actor.run)
        assert rig.actor.owned_partitions == list(range(8))  # alone: every partition
        await rig.feed([visit("a", 0), visit("a", 1), visit("b", 2)])
        await rig.settle()
        rig.actor.request_stop()
    rows = dict(
        query(storage_url, "SELECT user_fingerprint, total_events FROM user_behavior_profiles")
    )
    assert rows == {"a": 2, "b": 1}
    written = query(storage_url, "SELECT partition FROM profile_partitions WHERE writes > 0")
    assert {partition_of("a", 8), partition_of("b", 8)} <= {p for (p,) in written}
    assert query(storage_url, "SELECT count(*) FROM profile_leases WHERE owner IS NOT NULL") == [
        (0,)
    ]  # left
    # the scorer hears of the partitions taken, then of every written visitor
    assert from_profiles.receive_nowait() == PartitionsTaken(frozenset(range(8)), 8)
    assert sorted(from_profiles.receive_nowait()) == ["a", "b"]


async def test_reads_see_every_stored_event_before_any_write(storage):
    rig = Rig(storage, flush_interval=60)  # no write during the test
    async with trio.open_nursery() as nursery:
        await nursery.start(rig.actor.run)
        await rig.feed([visit("fresh", 0, event_type="booking_started")])
        live = await rig.actor.live_profile("fresh")
        assert (
            live.total_events,
            live.total_sessions,
            live.days_active,
            live.bookings_started,
        ) == (1, 1, 1, 1)
        assert await rig.actor.live_profile("nobody") is None
        assert [j.session_id for j in await rig.actor.live_journeys("fresh")] == ["fresh-s"]
        # stored by anyone, handed to no actor: read the same
        await storage.write_batch([visit("fresh", 1, session="other")])
        live = await rig.actor.live_profile("fresh")
        assert (live.total_events, live.total_sessions) == (2, 2)
        rig.actor.request_stop()


async def test_journeys_read_before_their_write_are_what_the_write_stores(storage, storage_url):
    """The read path merges unwritten sessions by the rule storage writes them with: the stage
    after a stored booking (retention), the earliest sourced touch as first source, the latest
    as last, even when events arrive out of order."""
    ad = "https://revivatech.example/p?utm_source="
    first = Rig(storage)
    async with trio.open_nursery() as nursery:
        await nursery.start(first.actor.run)
        await first.feed(
            [
                visit("r", 10, session="s1", page_url=ad + "mail"),
                visit("r", 20, session="s1", event_type="booking_completed"),
            ]
        )
        await first.settle()
        first.actor.request_stop()
    later = Rig(storage, flush_interval=60)  # writes only when it stops
    async with trio.open_nursery() as nursery:
        await nursery.start(later.actor.run)
        await later.feed(
            [
                visit("r", 50, session="s2", page_url=ad + "late"),
                visit("r", 40, session="s2", page_url=ad + "early"),  # older, arrives later
                visit("r", 5, session="s1", page_url=ad + "earlier"),  # before s1's first
            ]
        )
        before = await later.actor.live_journeys("r")
        later.actor.request_stop()
    async with open_storage(storage_url) as reader:  # the actor closed its own at its stop
        after = await reader.load_journeys("r")
    assert [(j.session_id, j.stage) for j in before] == [("s1", "booking"), ("s2", "retention")]
    assert [(j.first_touch_source, j.last_touch_source) for j in before] == [
        ("earlier", "mail"),
        ("early", "late"),
    ]
    assert before == after


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


async def test_a_crash_loses_nothing_and_counts_nothing_twice(storage, storage_url):
    """An actor cancelled without its last write (as a process killed by SIGKILL): the next one
    applies what was not written, from the stored positions, and nothing twice."""
    first = Rig(storage, flush_interval=60)
    events = [visit(f"v{n % 10}", n, session=f"s{n % 3}") for n in range(100)]
    async with trio.open_nursery() as nursery:
        await nursery.start(first.actor.run)
        await first.feed(events[:40])
        await until(lambda: first.actor.stats.applied_events >= 40)
        await first.actor.write()  # 40 written with their positions
        await first.feed(events[40:])  # 60 applied in memory only
        await until(lambda: first.actor.stats.applied_events >= 100)
        nursery.cancel_scope.cancel()  # no last write, no leaving
    assert counted(storage_url) == 40
    second = Rig(storage)
    async with trio.open_nursery() as nursery:
        await nursery.start(second.actor.run)  # the dead owner's leases expire first
        await until(lambda: counted(storage_url) == 100)
        await trio.sleep(0.2)
        second.actor.request_stop()
    assert counted(storage_url) == 100
    for n in range(10):
        assert query(storage_url, PROFILE, (f"v{n}",)) == [(10, 3, 0)]


async def test_a_restarted_actor_starts_over_from_storage(storage, storage_url):
    """The supervisor restarts a crashed actor with the same object: it starts over as another
    owner from the stored positions, whatever it held."""
    rig = Rig(storage, flush_interval=60)
    async with trio.open_nursery() as nursery:
        await nursery.start(rig.actor.run)
        await rig.feed([visit("r", n) for n in range(5)])
        await until(lambda: rig.actor.stats.applied_events >= 5)
        nursery.cancel_scope.cancel()
    first_owner = rig.actor.run_owner
    rig.actor.flush_interval = 0.05
    async with trio.open_nursery() as nursery:
        await nursery.start(
            rig.actor.run
        )  # at once: the previous run's leases are given up, not waited for
        assert rig.actor.run_owner != first_owner and rig.actor.owned_partitions == list(range(8))
        await until(lambda: counted(storage_url) == 5, timeout=2)
        rig.actor.request_stop()
    assert query(storage_url, PROFILE, ("r",)) == [(5, 1, 0)]


async def test_two_owners_share_the_partitions_and_a_survivor_takes_over(postgres_url, caplog):
    """Two actors on one database (as two instances): each owns half the partitions, events
    stored through either reach their owner through the log, every profile is exact; one
    dies and the other takes its partitions over, replaying what the dead one had not written."""
    caplog.set_level(logging.INFO, logger="revivatech_actors.actors.profiles")
    events = [visit(f"v{n % 40}", n, session=f"v{n % 40}-s{n // 40 % 2}") for n in range(400)]
    async with open_storage(postgres_url) as first, open_storage(postgres_url) as second:
        await first.migrate()
        a, b = Rig(first), Rig(second, flush_interval=60)
        async with trio.open_nursery() as outer:
            await outer.start(a.actor.run)
            async with trio.open_nursery() as inner:
                await inner.start(b.actor.run)
                await until(
                    lambda: len(a.actor.owned_partitions) == len(b.actor.owned_partitions) == 4
                )
                assert set(a.actor.owned_partitions).isdisjoint(b.actor.owned_partitions)
                given = [r.getMessage() for r in caplog.records if "given up" in r.getMessage()]
                assert given == [
                    "4 partition(s) of 8 given up to other instances (2 instance(s) alive): 4-7"
                ]  # one line, not one per partition
                for n in range(0, 400, 20):
                    await (a, b)[(n // 20) % 2].feed(events[n : n + 20])
                for visitor in ("v0", "v7", "v13"):  # every stored event counts, on both
                    assert (await a.actor.live_profile(visitor)).total_events == 10
                    assert (await b.actor.live_profile(visitor)).total_events == 10
                await until(lambda: b.actor.stats.applied_events >= 100)
                inner.cancel_scope.cancel()  # b dies, its deltas unwritten (no flush for 60 s)
            await until(lambda: len(a.actor.owned_partitions) == 8, timeout=3)
            await until(lambda: counted(postgres_url) == 400)
            a.actor.request_stop()
    for n in range(40):
        assert query(postgres_url, PROFILE, (f"v{n}",)) == [(10, 2, 0)]


async def test_events_stored_for_another_owner_are_announced_to_it(postgres_url):
    """Owners are told of events stored for them elsewhere (PostgreSQL NOTIFY) and read the log
    at once, long before their next poll."""
    async with (
        open_storage(postgres_url) as first,
        open_storage(postgres_url) as second,
        open_storage(postgres_url) as b_listener,
    ):
        await first.migrate()
        a = Rig(first, poll_interval=30)  # stores, owns nothing at first
        b = Rig(second, poll_interval=30, listener=b_listener)  # owns everything
        async with trio.open_nursery() as nursery:
            await nursery.start(b.actor.run)
            await nursery.start(a.actor.run)
            a.actor._router.cursors.clear()  # as if b owned every partition: what a stores is b's
            await a.feed([visit("told", n) for n in range(3)])
            await until(lambda: b.actor.stats.applied_events == 3, timeout=2)
            await until(lambda: counted(postgres_url) == 3, timeout=2)
            assert b.actor.stats.replayed_events == 3
            nursery.cancel_scope.cancel()


async def test_a_passivated_visitor_keeps_its_pending_events(storage, storage_url):
    rig = Rig(storage, max_active=1, flush_interval=60)
    async with trio.open_nursery() as nursery:
        await nursery.start(rig.actor.run)
        await rig.feed([visit("a", 0)])
        await rig.feed([visit("b", 1)])  # a is passivated with its event: only one may be active
        await until(lambda: rig.actor.stats.applied_events >= 2)
        assert rig.actor.active_count == 1
        await rig.feed([visit("a", 2, session="a-s2")])  # reactivated
        await until(lambda: rig.actor.stats.applied_events >= 3)
        rig.actor.request_stop()
    assert rig.actor.stats.passivations >= 2 and rig.actor.stats.activations == 2
    assert query(storage_url, PROFILE, ("a",)) == [(2, 2, 0)]


async def test_idle_visitors_are_passivated(storage):
    rig = Rig(storage, idle_timeout=0.1)
    async with trio.open_nursery() as nursery:
        await nursery.start(rig.actor.run)
        await rig.feed([visit("idle", 0)])
        await rig.settle()
        await until(lambda: not rig.actor.active_count, timeout=3)
        rig.actor.request_stop()
    assert rig.actor.stats.passivations == 1


async def test_a_closed_inbox_ends_the_actor_after_a_last_write(storage, storage_url):
    rig = Rig(storage, flush_interval=60, poll_interval=60)  # only the final write
    async with trio.open_nursery() as nursery:
        await nursery.start(rig.actor.run)
        await rig.feed([visit("late", 0), visit("late", 1)])
        await rig.send.aclose()
    assert query(storage_url, PROFILE, ("late",)) == [(2, 1, 0)]


async def test_a_large_batch_is_handled_whole_even_when_the_idle_check_falls_due(storage):
    """Handling yields between slices of visitors; the idle check's deadline must not cut a
    batch short (it once did: the rest of the batch was lost)."""
    rig = Rig(storage, flush_interval=60, idle_timeout=0.0001, poll_interval=60)
    events = [visit(f"many-{n}", n) for n in range(1000)]  # 1,000 visitors: two slices
    async with trio.open_nursery() as nursery:
        await nursery.start(rig.actor.run)
        await rig.send.send(
            StoredBatch(events, 2**40)
        )  # straight to the actor: the fast path trusts the batcher
        await until(lambda: rig.actor.stats.applied_events >= len(events), timeout=3)
        rig.actor.request_stop()
    assert rig.actor.stats.activations == 1000
    assert rig.actor.stats.profiles_written == 1000


async def test_too_many_unwritten_events_start_a_write_whatever_the_pacing(storage, storage_url):
    rig = Rig(
        storage, flush_interval=60, max_unwritten_events=10
    )  # the interval alone would not write
    async with trio.open_nursery() as nursery:
        await nursery.start(rig.actor.run)
        await rig.feed([visit("busy", n) for n in range(11)])
        await until(lambda: rig.actor.stats.writes >= 1, timeout=3)
        assert query(storage_url, "SELECT total_events FROM user_behavior_profiles") == [(11,)]
        assert rig.actor.stats_json()["unwrittenEvents"] == 0  # what operators watch
        await rig.feed([visit("busy", 20), visit("other", 21)])
        await until(lambda: rig.actor.stats.applied_events >= rig.fed, timeout=3)
        assert (
            rig.actor.stats_json()["unwrittenEvents"],
            rig.actor.stats_json()["maxUnwrittenEvents"],
        ) == (2, 10)
        rig.actor.request_stop()


async def test_the_last_write_of_a_stop_runs_on_two_connections(postgres_url):
    """From the stop on, chunks go to ``storage`` and ``stop_writer`` at once: with the first
    chunk held up by a row lock, the second still commits; then every profile is exact."""
    visitors = [
        "a-locked",
        *(f"v{n:04d}" for n in range(URGENT_WRITE_CHUNK + 10)),
    ]  # two chunks or more
    async with open_storage(postgres_url) as storage, open_storage(postgres_url) as stop_writer:
        await storage.migrate()
        first = Rig(storage)
        async with trio.open_nursery() as nursery:  # a stored profile row for the lock to hold
            await nursery.start(first.actor.run)
            await first.feed([visit("a-locked", 0)])
            await first.send.aclose()
        rig = Rig(storage, stop_writer=stop_writer, flush_interval=60)  # only the stop's write
        events = [visit(fp, 1) for fp in visitors]
        with psycopg.connect(postgres_url) as lock:
            lock.execute(
                "SELECT 1 FROM user_behavior_profiles WHERE user_fingerprint = 'a-locked'"
                " FOR UPDATE"
            )
            async with trio.open_nursery() as nursery:
                await nursery.start(rig.actor.run)
                await rig.feed(events)
                await until(lambda: rig.actor.stats.applied_events >= rig.fed)
                await rig.send.aclose()  # the stop: one write of two chunks, one blocked
                try:
                    await until(lambda: counted(postgres_url) > 12)
                    assert query(postgres_url, PROFILE, ("a-locked",)) == [
                        (1, 1, 0)
                    ]  # its chunk waits for the lock
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
async def test_writes_are_paced_by_their_expected_cost_while_events_come_in(
    waiting, seconds_per_visitor, idle, due
):
    actor = ProfilesActor(None, None, max_write_share=0.1)
    actor._pacing.last_batch_at = trio.current_time()  # events are being stored here
    actor._router.unwritten_visitors = waiting
    actor._pacing.seconds_per_visitor = seconds_per_visitor
    assert actor._write_due(idle) is due
    actor._pacing.last_batch_at -= 2 * actor.flush_interval  # none for a while: nothing to hold up
    assert actor._write_due(idle) is (waiting > 0)


async def test_a_copy_of_a_batch_from_another_transaction_is_not_applied_twice(
    storage, storage_url
):
    """The fast path and the log may both bring a transaction: each partition applies it once."""
    rig = Rig(storage, flush_interval=60)
    events = [visit("twice", n) for n in range(3)]
    async with trio.open_nursery() as nursery:
        await nursery.start(rig.actor.run)
        committed = await storage.commit_batch(events)
        await until(lambda: rig.actor.stats.replayed_events >= 3)  # read from the log first
        await rig.send.send(StoredBatch(events, committed.log_txn))  # then handed over
        another = [attrs.evolve(events[0], event_id=str(uuid.uuid4()))]
        await storage.write_batch(another)
        await rig.send.send(
            StoredBatch(another, None)
        )  # stored in several transactions: taken from the log
        await until(lambda: rig.actor.stats.applied_events >= 4)
        await trio.sleep(0.2)
        rig.actor.request_stop()
    assert query(storage_url, PROFILE, ("twice",)) == [(4, 1, 0)]
    assert rig.actor.stats.applied_events == 4
