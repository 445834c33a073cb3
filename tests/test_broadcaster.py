"""The broadcaster and its client outboxes: latest-only snapshots and insights, replies first,
the client cap, change-driven snapshots throttled by min_interval, periodic ones, insights
read once per visitor for all its followers, and 1001 for everyone when it stops."""

from __future__ import annotations

import json

import pytest
import trio

from revivatech_actors.actors.broadcaster import (
    GOING_AWAY,
    MAX_REPLIES,
    TRY_AGAIN_LATER,
    BroadcasterActor,
    ClientFeed,
    ClientRefused,
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

    return BroadcasterActor(metrics.data, metrics.wait_for_change, insights, **settings)


async def test_snapshots_follow_changes_at_most_once_per_min_interval(autojump_clock):
    metrics = Metrics()
    b = broadcaster(metrics, interval=30, min_interval=0.2)
    async with trio.open_nursery() as nursery:
        await nursery.start(b.run)
        feed = b.connect()
        started = trio.current_time()
        b.subscribe_realtime(feed)
        first = await feed.next_message()
        assert '"type":"realtime_metrics"' in first
        assert trio.current_time() - started <= 0.001  # at once (a 1 ms floor: no busy loop)
        for _ in range(20):  # 20 changes within 0.2 s
            metrics.change()
            await trio.sleep(0.01)
        await trio.sleep(0.5)
        # the first snapshot, one at 0.2 s, one at 0.4 s for the last changes: not one per change
        assert metrics.built == 3
        assert '"version":20' in (await drain(feed))[-1]  # the latest state arrived
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
    b = broadcaster(metrics)
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
