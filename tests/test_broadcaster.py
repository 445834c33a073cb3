"""The broadcaster and its client outboxes: latest-only snapshots and insights, replies first,
the client cap, change-driven snapshots (at once when quiet, a burst within min_interval as one,
spaced by their cost when busy, never two in flight, a stuck client waited for only briefly),
periodic ones, insights read once per visitor for all its followers, and 1001 for everyone when
it stops."""

from __future__ import annotations

import itertools
import json
from functools import partial

import pytest
import trio
import trio.testing

from revivatech_actors.actors.broadcaster import (
    FIRST_SEND_WAIT,
    FLUSH,
    GOING_AWAY,
    MAX_REPLIES,
    STRAGGLER_WAIT,
    TRY_AGAIN_LATER,
    BroadcasterActor,
    ClientFeed,
    ClientRefused,
    Delivery,
    snapshot_due,
)


async def drain(feed: ClientFeed) -> list[str]:
    out = []
    while True:
        with trio.move_on_after(0.01):
            message = await feed.next_message()
            if message is None:
                return out
            out.append(message)
            continue
        return out


async def test_an_outbox_keeps_replies_in_order_and_only_the_latest_snapshot_and_insights():
    feed = ClientFeed("c")
    feed.put_snapshot("s1")
    feed.put_insights("v", "i1")
    feed.reply({"type": "pong"})
    feed.put_snapshot("s2")
    feed.put_insights("v", "i2")
    feed.put_insights("w", "j1")
    assert await drain(feed) == ['{"type":"pong"}', "s2", "i2", "j1"]
    assert feed.replaced == 2


async def test_a_client_that_lets_replies_pile_up_is_closed_with_1013():
    feed = ClientFeed("c")
    for _ in range(MAX_REPLIES + 1):
        feed.reply({"type": "pong"})
    assert feed.close_code == TRY_AGAIN_LATER
    assert await feed.next_message() is None


class Metrics:
    """A stand-in for the metrics actor: a version that moves when told."""

    def __init__(self) -> None:
        self.version = 0
        self.built = 0
        self.top_pages: list[dict] = []
        self._changed = trio.Event()

    def change(self) -> None:
        self.version += 1
        self._changed.set()
        self._changed = trio.Event()

    async def wait_for_change(self, seen: int) -> int:
        while self.version == seen:
            await self._changed.wait()
        return self.version

    async def data(self) -> dict:
        self.built += 1
        return {"version": self.version, "topPages": self.top_pages}


def broadcaster(metrics: Metrics, reads: list[str] | None = None, **settings) -> BroadcasterActor:
    async def insights(fp: str):
        if reads is not None:
            reads.append(fp)
        return {"profile": {"fingerprint": fp}} if fp != "unknown" else None

    settings.setdefault("cpu_clock", trio.current_time)  # the event loop busy all along
    return BroadcasterActor(metrics.data, metrics.wait_for_change, insights, **settings)


def test_the_next_snapshot_is_due_min_interval_after_the_last_or_later_by_its_cost():
    due = partial(snapshot_due, min_interval=0.05, max_share=0.5)
    assert due(10.0, 0.0) == 10.05  # a cheap snapshot: the floor
    assert due(10.0, 0.02) == 10.05  # 0.02 in flight, 0.02 of rest: still within the floor
    assert due(10.0, 0.3) == pytest.approx(10.6)  # in flight half the time at most
    assert snapshot_due(10.0, 0.3, min_interval=0.05, max_share=1.0) == pytest.approx(10.3)
    assert due(float("-inf"), 0.0) == float("-inf")  # the first one: at once


async def read_all(feed: ClientFeed, got: list, *, lock: trio.Lock | None = None, send=0.0):
    """A writer: takes each message and 'sends' it for ``send`` seconds (one at a time across
    the writers sharing ``lock``, as the sends of one event loop are); records (version, when
    sent)."""
    while (message := await feed.next_message()) is not None:
        if lock is None:
            await trio.sleep(send)
        else:
            async with lock:
                await trio.sleep(send)
        got.append((json.loads(message)["data"]["version"], trio.current_time()))


def test_with_many_clients_the_next_snapshot_waits_for_the_sends_all_clients_may_get():
    due = partial(snapshot_due, min_interval=0.05, max_share=0.5, max_sends_per_second=7500)
    assert due(10.0, 0.0, 50) == 10.05  # few clients: the floor
    assert due(10.0, 0.05, 3000) == pytest.approx(10.4)  # 3,000 clients: one each 0.4 s
    assert due(10.0, 0.3, 3000) == pytest.approx(10.6)  # unless the cost says later
    assert snapshot_due(10.0, 0.0, 3000, min_interval=0.05, max_share=0.5) == 10.05  # no bound


async def test_an_idle_writer_s_snapshot_is_written_at_once_and_what_is_left_flushed_by_it():
    writes: list[str] = []
    left: list[int | None] = [0]  # what write_now answers: bytes left, None if it cannot

    def write_now(text: str) -> int | None:
        if left[0] is not None:
            writes.append(text)
        return left[0]

    feed = ClientFeed("c", write_now=write_now)
    got: list = []
    assert feed.put_snapshot("s0") is False  # no writer waiting yet: the outbox
    async with trio.open_nursery() as nursery:

        async def writer() -> None:
            while (message := await feed.next_message()) is not None:
                got.append(message)

        nursery.start_soon(writer)
        await trio.testing.wait_all_tasks_blocked()
        assert got == ["s0"] and writes == []

        assert feed.put_snapshot("s1") is True  # the writer waits: written, no task woken
        assert writes == ["s1"] and got == ["s0"]

        feed.reply({"type": "pong"})  # a reply waits: the snapshot goes after it, in order
        assert feed.put_snapshot("s2") is False
        await trio.testing.wait_all_tasks_blocked()
        assert got[1:] == ['{"type":"pong"}', "s2"] and writes == ["s1"]

        left[0] = 5  # the kernel took part of it: the writer sends the rest, then it counts
        delivery = Delivery(trio.current_time)
        assert feed.put_snapshot("s3", delivery) is False
        assert writes == ["s1", "s3"] and delivery.expected == 1
        await trio.testing.wait_all_tasks_blocked()
        assert got[-1] is FLUSH and delivery.expected == 0

        left[0] = None  # cannot be written now (a send is under way): the outbox
        assert feed.put_snapshot("s4") is False
        await trio.testing.wait_all_tasks_blocked()
        assert got[-1] == "s4" and writes == ["s1", "s3"]
        feed.close(GOING_AWAY, "done")


async def test_snapshots_written_at_once_are_delivered_at_once_and_counted(autojump_clock):
    metrics = Metrics()
    b = broadcaster(metrics, interval=30, min_interval=0.05)
    writes: list[str] = []
    async with trio.open_nursery() as nursery:
        await nursery.start(b.run)
        for _ in range(3):
            feed = b.connect()
            feed.write_now = lambda text: writes.append(text) or 0
            nursery.start_soon(read_all, feed, [])
            await trio.testing.wait_all_tasks_blocked()
            b.subscribe_realtime(feed)
        await trio.sleep(1)
        writes.clear()
        began = trio.current_time()
        metrics.change()
        await trio.sleep(0.01)
        assert len(writes) == 3 and len(set(writes)) == 1  # one encoding for all
        assert trio.current_time() - began < 0.02
        nursery.cancel_scope.cancel()
    stats = b.stats_json()
    assert stats["snapshotsWrittenAtOnce"] >= 3


async def test_many_clients_space_snapshots_by_the_sends_all_may_get(autojump_clock):
    metrics = Metrics()
    builds: list[float] = []

    async def data() -> dict:
        builds.append(trio.current_time())
        return await metrics.data()

    # 10 clients, 20 sends per second: one snapshot each 0.5 s, however cheap
    b = broadcaster(metrics, interval=30, min_interval=0.05, max_sends_per_second=20)
    b.realtime_data = data
    spacing = await spacing_of_builds(b, metrics, builds, send=0.0, seconds=3)
    assert len(spacing) >= 4
    assert all(gap == pytest.approx(0.5, abs=0.01) for gap in spacing[1:]), spacing


async def spacing_of_builds(
    b: BroadcasterActor, metrics: Metrics, builds: list[float], *, send: float, seconds: float
) -> list[float]:
    """The gaps between snapshot builds (``builds``, recorded by ``b.realtime_data``) over
    ``seconds`` of a change every 10 ms, to 10 clients whose sends take ``send`` seconds."""
    async with trio.open_nursery() as nursery:
        await nursery.start(b.run)
        for _ in range(10):
            feed = b.connect()
            nursery.start_soon(partial(read_all, feed, [], send=send))
            b.subscribe_realtime(feed)

        async def changes() -> None:
            while True:
                await trio.sleep(0.01)
                metrics.change()

        nursery.start_soon(changes)
        await trio.sleep(seconds)
        nursery.cancel_scope.cancel()
    return [later - earlier for earlier, later in itertools.pairwise(builds)]


async def test_a_change_on_a_quiet_feed_goes_out_at_once_and_a_burst_as_one(autojump_clock):
    metrics = Metrics()
    b = broadcaster(metrics, interval=30, min_interval=0.05)
    async with trio.open_nursery() as nursery:
        await nursery.start(b.run)
        feed, got = b.connect(), []
        nursery.start_soon(read_all, feed, got)
        b.subscribe_realtime(feed)
        await trio.sleep(5)
        assert [version for version, _ in got] == [0]  # on subscribing; nothing changed since
        changed = trio.current_time()
        metrics.change()  # a lone event on a quiet feed
        for _ in range(10):  # then a burst: 10 changes within 0.04 s
            await trio.sleep(0.004)
            metrics.change()
        await trio.sleep(1)
        assert [version for version, _ in got[1:]] == [1, 11]  # the burst as one snapshot...
        assert got[1][1] - changed <= 0.001  # the lone event at once
        assert got[2][1] - got[1][1] == pytest.approx(0.05, abs=0.002)  # ...min_interval later
        nursery.cancel_scope.cancel()


@pytest.mark.parametrize("in_turn", [True, False], ids=["sends-in-turn", "sends-end-together"])
async def test_busy_snapshots_are_spaced_by_their_cost_never_two_in_flight(autojump_clock, in_turn):
    metrics = Metrics()
    builds: list[tuple[float, int]] = []  # (start, version) of each snapshot's build

    async def data() -> dict:
        builds.append((trio.current_time(), metrics.version))
        return await metrics.data()

    b = broadcaster(metrics, interval=30, min_interval=0.05, max_share=0.5)
    b.realtime_data = data
    lock, got = trio.Lock(), []
    async with trio.open_nursery() as nursery:
        await nursery.start(b.run)
        for _ in range(10):  # 10 clients: each snapshot costs 0.2 s
            feed = b.connect()
            if in_turn:  # 0.02 s each, one after another
                writer = partial(read_all, feed, got, lock=lock, send=0.02)
            else:  # the event loop's turns: every send ends after 0.2 s
                writer = partial(read_all, feed, got, send=0.2)
            nursery.start_soon(writer)
            b.subscribe_realtime(feed)

        async def changes() -> None:  # a change every 10 ms
            while True:
                await trio.sleep(0.01)
                metrics.change()

        nursery.start_soon(changes)
        await trio.sleep(4)
        nursery.cancel_scope.cancel()
    starts = [start for start, _ in builds]
    spacing = [later - earlier for earlier, later in itertools.pairwise(starts)]
    # in flight 0.2 s, then as long a rest: one start per 0.4 s, not one per 0.05 s
    assert 9 <= len(builds) <= 11
    assert all(gap == pytest.approx(0.4, abs=0.01) for gap in spacing), spacing
    for (_, version), next_start in zip(builds, starts[1:], strict=False):
        sends = [when for v, when in got if v == version]
        assert len(sends) == 10  # every client sent every snapshot...
        assert max(sends) <= next_start  # ...before the next one was built
    assert b.stats_json()["lastSnapshotSeconds"] == pytest.approx(0.2, abs=0.002)


async def test_time_waiting_for_a_core_is_no_cost_yet_never_two_in_flight(autojump_clock):
    metrics = Metrics()
    builds: list[float] = []

    async def data() -> dict:
        builds.append(trio.current_time())
        return await metrics.data()

    # each fan-out takes 0.2 s, none of it the event loop's CPU (other processes had the cores)
    b = broadcaster(metrics, interval=30, min_interval=0.05, cpu_clock=lambda: 0.0)
    b.realtime_data = data
    spacing = await spacing_of_builds(b, metrics, builds, send=0.2, seconds=2)
    # no rest, yet each waits for the last one's sends
    assert len(spacing) >= 8
    assert all(gap == pytest.approx(0.2, abs=0.002) for gap in spacing), spacing


async def test_a_client_that_stopped_reading_holds_the_others_up_only_briefly(autojump_clock):
    metrics = Metrics()
    b = broadcaster(metrics, interval=30, min_interval=0.05)
    async with trio.open_nursery() as nursery:
        await nursery.start(b.run)
        reader, got = b.connect(), []
        nursery.start_soon(read_all, reader, got)
        b.subscribe_realtime(reader)
        stuck = b.connect()
        b.subscribe_realtime(stuck)

        async def stuck_writer() -> None:
            await stuck.next_message()  # the subscription's snapshot, sent
            await stuck.next_message()  # the first change's: its send never ends
            await trio.sleep_forever()

        nursery.start_soon(stuck_writer)
        await trio.sleep(1)

        async def changes() -> None:  # a change every 20 ms
            while True:
                metrics.change()
                await trio.sleep(0.02)

        nursery.start_soon(changes)
        await trio.sleep(1)
        b.disconnect(stuck)  # as its watchdog does after broadcast.stuck_timeout
        stuck_gone = trio.current_time()
        await trio.sleep(1)
        nursery.cancel_scope.cancel()
    sent = [when for _, when in got[1:]]
    gaps = [later - earlier for earlier, later in itertools.pairwise(sent)]
    while_stuck = [gap for gap, when in zip(gaps, sent[1:], strict=True) if when < stuck_gone]
    after = [gap for gap, when in zip(gaps, sent[1:], strict=True) if when > stuck_gone + 0.2]
    # each snapshot waited STRAGGLER_WAIT for the stuck client (not stuck_timeout), then no more
    assert len(while_stuck) >= 8
    assert all(gap == pytest.approx(STRAGGLER_WAIT, abs=0.002) for gap in while_stuck), gaps
    assert all(gap == pytest.approx(0.05, abs=0.002) for gap in after), gaps


async def test_a_feed_where_every_client_stopped_reading_is_waited_for_at_most_a_while(
    autojump_clock,
):
    metrics = Metrics()
    b = broadcaster(metrics, interval=30, min_interval=0.05)
    async with trio.open_nursery() as nursery:
        await nursery.start(b.run)
        stuck = b.connect()
        b.subscribe_realtime(stuck)
        await stuck.next_message()  # the subscription's snapshot
        metrics.change()
        await trio.sleep(0.01)
        await stuck.next_message()  # the change's: never sent
        metrics.change()
        await trio.sleep(FIRST_SEND_WAIT - 0.01)
        assert metrics.built == 2  # waiting for the stuck send...
        await trio.sleep(0.02)
        assert metrics.built == 3  # ...FIRST_SEND_WAIT, not until stuck_timeout closes it
        nursery.cancel_scope.cancel()


async def test_a_new_subscriber_gets_the_last_snapshot_until_the_next_is_due(autojump_clock):
    metrics = Metrics()
    b = broadcaster(metrics, interval=30, min_interval=0.2)
    async with trio.open_nursery() as nursery:
        await nursery.start(b.run)
        first, got = b.connect(), []
        nursery.start_soon(read_all, first, got)
        b.subscribe_realtime(first)
        await trio.sleep(0.1)
        assert metrics.built == 1
        early = b.connect()
        b.subscribe_realtime(early)  # within min_interval: the last one, none built for it
        assert json.loads(await early.next_message())["data"]["version"] == 0
        await trio.sleep(0.2)
        late = b.connect()
        b.subscribe_realtime(late)  # the next one is due: built for it
        await late.next_message()
        assert metrics.built == 2
        nursery.cancel_scope.cancel()


async def test_periodic_snapshots_without_changes_and_nothing_built_without_subscribers(
    autojump_clock,
):
    metrics = Metrics()
    b = broadcaster(metrics, interval=0.1, min_interval=0.01)
    async with trio.open_nursery() as nursery:
        await nursery.start(b.run)
        await trio.sleep(0.3)
        assert metrics.built == 0  # nobody subscribed
        feed = b.connect()
        b.subscribe_realtime(feed)
        received = 0
        with trio.move_on_after(0.45):
            while await feed.next_message():
                received += 1
        assert received == 5  # the first at once, then every 0.1 s
        nursery.cancel_scope.cancel()


async def test_insights_are_read_once_per_visitor_for_all_followers():
    metrics, reads = Metrics(), []
    b = broadcaster(metrics, reads)
    async with trio.open_nursery() as nursery:
        await nursery.start(b.run)
        a, c = b.connect(), b.connect()
        b.follow(a, "v")
        b.follow(c, "v")
        b.scores_recorded("v")
        b.scores_recorded("nobody-follows")
        await trio.sleep(0.05)
        assert reads == ["v"]
        for feed in (a, c):
            assert '"fingerprint":"v"' in (await drain(feed))[0]
        b.unfollow(a, "v")
        b.scores_recorded("v")
        await trio.sleep(0.05)
        assert await drain(a) == [] and len(await drain(c)) == 1
        nursery.cancel_scope.cancel()


async def test_the_client_cap_and_1001_for_everyone_at_stop():
    b = broadcaster(Metrics(), max_clients=2)
    with pytest.raises(ClientRefused) as refused:
        b.connect()  # not running yet
    assert refused.value.error == "not_running"
    async with trio.open_nursery() as nursery:
        await nursery.start(b.run)
        feeds = [b.connect(), b.connect()]
        with pytest.raises(ClientRefused, match="2 admin clients are connected") as refused:
            b.connect()
        assert refused.value.error == "too_many_clients"
        b.disconnect(feeds.pop())
        feeds.append(b.connect())
        nursery.cancel_scope.cancel()
    assert [f.close_code for f in feeds] == [GOING_AWAY, GOING_AWAY]


async def test_public_clients_have_their_own_cap_and_never_take_admin_places():
    b = broadcaster(Metrics(), max_clients=1, max_public_clients=2)
    async with trio.open_nursery() as nursery:
        await nursery.start(b.run)
        visitors = [b.connect(public=True), b.connect(public=True)]
        with pytest.raises(ClientRefused, match="max_public_clients") as refused:
            b.connect(public=True)
        assert refused.value.error == "too_many_clients"
        admin = b.connect()  # the visitors took none of the admins' places
        with pytest.raises(ClientRefused, match="max_clients"):
            b.connect()
        assert (b.stats_json()["clients"], b.stats_json()["publicClients"]) == (3, 2)
        b.disconnect(visitors.pop())
        b.disconnect(visitors[0])
        b.disconnect(visitors[0])  # twice: counted once
        assert b.public_clients == 0
        visitors.append(b.connect(public=True))
        assert admin.public is False and visitors[-1].public is True
        nursery.cancel_scope.cancel()


async def test_a_public_client_may_follow_realtime_but_never_a_visitor():
    metrics = Metrics()
    metrics.top_pages = [
        {"page_url": "https://x.example/book?ref=visitor-1", "views": 1},
        {"page_url": "https://x.example/book", "views": 1},
    ]
    b = broadcaster(metrics, min_interval=1.0)
    async with trio.open_nursery() as nursery:
        await nursery.start(b.run)
        feed = b.connect(public=True)
        with pytest.raises(PermissionError):
            b.follow(feed, "v")
        assert feed.fingerprints == set()
        admin = b.connect()
        b.subscribe_realtime(feed)
        b.subscribe_realtime(admin)
        with trio.fail_after(2):
            public_message, admin_message = await feed.next_message(), await admin.next_message()
        assert json.loads(public_message)["data"]["topPages"] == [
            {"page_url": "https://x.example/book", "views": 2}
        ]
        assert (
            json.loads(admin_message)["data"]["topPages"][0]["page_url"]
            == "https://x.example/book?ref=visitor-1"
        )
        late = b.connect(
            public=True
        )  # within min_interval: the last public snapshot, not the admins'
        b.subscribe_realtime(late)
        assert await late.next_message() == public_message
        nursery.cancel_scope.cancel()
