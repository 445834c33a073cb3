"""Routing stored events to visitor actors (``actors.profiles._routing``): each partition
applies a transaction once, passivation keeps unwritten events, a lost partition is dropped, a
refused write is taken again. Pure: no storage, no clock."""

from __future__ import annotations

from revivatech_actors.actors.profiles._routing import Router, position_of
from revivatech_actors.actors.profiles._stats import ProfileStats
from revivatech_actors.domain.partitions import Cursor, partition_of
from revivatech_actors.domain.profiles import delta_from_events, touch_of

from .helpers import make_event

PARTITIONS = 4


def visit(visitor: str, n: int):
    return make_event(n, user_fingerprint=visitor, session_id=f"{visitor}-s")


def owning(*partitions: int) -> Router:
    router = Router(PARTITIONS, ProfileStats())
    for partition in partitions:
        router.cursors[partition] = Cursor(partition, horizon=100)
    return router


def test_a_transaction_is_applied_once_per_owned_partition():
    router = owning(partition_of("a", PARTITIONS))
    events = [visit("a", 0), visit("a", 1)]
    takes: dict = {}
    router.apply(events, 200, takes, now=1.0)
    router.mark(200, takes)
    assert router.cursors[partition_of("a", PARTITIONS)].covers(200)
    router.apply(events, 200, {}, now=2.0)  # the same transaction again (from the log, say)
    router.apply(events, 50, {}, now=2.0)  # below the horizon: applied before
    assert router.stats.applied_events == 2 and router.stats.activations == 1
    assert (router.unwritten_events, router.unwritten_visitors) == (2, 1)
    assert len(router.active["a"].pending) == 2


def test_events_of_partitions_owned_elsewhere_are_foreign():
    router = owning()
    router.apply([visit("a", 0)], 200, {}, now=1.0)
    assert router.foreign and router.stats.applied_events == 0 and not router.active


def test_passivated_visitors_keep_their_unwritten_events_until_written():
    router = owning(*range(PARTITIONS))
    router.apply([visit("a", 0), visit("b", 1)], 200, {}, now=1.0)
    router.evict(max_active=1)  # the least recently used goes
    assert list(router.active) == ["b"] and list(router.retiring) == ["a"]
    router.passivate_idle(horizon=1.0)  # b's last event is no later than the horizon
    assert not router.active and set(router.retiring) == {"a", "b"}
    assert router.count_dirty() == 2 and router.stats.passivations == 2
    router.receive("a", partition_of("a", PARTITIONS), touch_of(visit("a", 2)), now=3.0)
    assert list(router.active) == ["a"] and router.stats.activations == 2  # back from retiring
    for partition in list(router.dirty):
        taken = router.begin_write([partition])
        router.write_committed(taken, [delta_from_events(fp, t) for fp, t, _ in taken.work])
    router.forget_written()
    assert not router.retiring and router.count_dirty() == 0
    assert (router.unwritten_events, router.unwritten_visitors) == (0, 0)


def test_a_lost_partition_drops_its_visitors_and_their_unwritten_events():
    a = "a"
    b = next(
        f"b{n}"
        for n in range(100)
        if partition_of(f"b{n}", PARTITIONS) != partition_of(a, PARTITIONS)
    )
    router = owning(*range(PARTITIONS))
    router.apply([visit(a, 0), visit(a, 1), visit(b, 2)], 200, {}, now=1.0)
    assert router.lose(partition_of(a, PARTITIONS), "taken over") is True
    assert router.lose(partition_of(a, PARTITIONS), "taken over") is False  # not owned any more
    assert list(router.active) == [b] and (router.unwritten_events, router.unwritten_visitors) == (
        1,
        1,
    )
    assert router.stats.partitions_lost == 1


def test_a_refused_write_is_taken_again_first_with_its_position():
    router = owning(*range(PARTITIONS))
    partition = partition_of("a", PARTITIONS)
    takes: dict = {}
    router.apply([visit("a", 0)], 200, takes, now=1.0)
    router.mark(200, takes)
    assert router.pending_by_partition()[partition] == (1, 1)
    taken = router.begin_write([partition])
    assert taken.positions == [position_of(router.cursors[partition])]
    assert not router.cursors[partition].moved and router.unwritten_events == 0
    router.receive("a", partition, touch_of(visit("a", 1)), now=2.0)  # arrives meanwhile
    router.write_refused(taken)
    assert [t.timestamp for t in router.active["a"].pending] == [
        visit("a", n).timestamp for n in (0, 1)
    ]
    assert (router.unwritten_events, router.unwritten_visitors) == (2, 1)
    assert router.cursors[partition].moved and router.dirty[partition] == {"a": router.active["a"]}
    assert router.begin_write([PARTITIONS + 1]) is None  # not owned
