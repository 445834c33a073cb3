"""Which visitor actor each stored event goes to, and which actors stay in memory.

The :class:`Router` holds what this process derives for the partitions it owns: each
partition's :class:`~revivatech_actors.domain.partitions.Cursor` (which log transactions its
state has applied) and the :class:`VisitorActor` of its visitors. A stored event goes, in order,
to its visitor's actor unless its partition is owned elsewhere or its cursor covers the event's
transaction already: whether an event comes from this process's batcher or from the log, each
partition applies it once. An actor is activated on its visitor's first event and passivated
after ``idle_timeout`` without one, or when more than ``max_active`` are active (least recently
used first); a passivated actor whose events are not written yet is kept, retiring, until a
write commits them.

No I/O and no clock of its own: the caller passes the times.
"""

from __future__ import annotations

import collections
import logging
import operator
from collections.abc import Iterable
from datetime import date
from typing import Any

import attrs

from ...domain.partitions import Cursor, slot_of
from ...domain.profiles import ProfileDelta, Touch, touch_of
from ...storage._records import PartitionPosition
from ._stats import ProfileStats
from ._visitor import VisitorActor

__all__ = ["Router", "TakenChunk", "Work", "position_of"]

logger = logging.getLogger(__package__)  # the actor's one logger, whichever part speaks

#: A visitor's share of a write: its fingerprint, its events in flight, the days storage has.
Work = tuple[str, list[Touch], tuple[date, ...]]


@attrs.frozen
class TakenChunk:
    """What one write transaction took from the router: its partitions' cursors and positions,
    and their visitors' events (now in flight)."""

    cursors: dict[int, Cursor]
    actors: list[VisitorActor]  # by fingerprint: every write locks profile rows in one order
    positions: list[PartitionPosition]
    work: list[Work]  # one per actor, in the same order


@attrs.define(eq=False)
class Router:
    """The owned partitions' cursors and visitor actors; see the module docstring."""

    partitions: int
    stats: ProfileStats
    cursors: dict[int, Cursor] = attrs.Factory(dict)  # the partitions owned
    # least recently used first
    active: collections.OrderedDict[str, VisitorActor] = attrs.Factory(collections.OrderedDict)
    # passivated with events not yet written: kept until a write commits them
    retiring: dict[str, VisitorActor] = attrs.Factory(dict)
    # the actors with pending events, by partition: what a write of the partition takes
    dirty: dict[int, dict[str, VisitorActor]] = attrs.Factory(dict)
    unwritten_events: int = 0  # handled, not yet in a write
    unwritten_visitors: int = 0  # with pending events
    replayed_unwritten: int = 0  # applied from the log since the last write began
    foreign: bool = False  # events for partitions owned elsewhere, not announced yet

    def reset(self) -> None:
        """Forget every partition and visitor: a new run starts over from the stored positions."""
        self.cursors.clear()
        self.active.clear()
        self.retiring.clear()
        self.dirty.clear()
        self.unwritten_events = self.unwritten_visitors = self.replayed_unwritten = 0

    # ------------------------------------------------------------------ routing

    def apply(
        self, events: list[Any], txn: int, takes: dict[int, Cursor | None], now: float
    ) -> None:
        """The fast path: ``events`` (of one batch, in order, or a slice of it) stored by log
        transaction ``txn``. Those of partitions owned here whose cursor does not cover ``txn``
        are applied; ``takes`` remembers, per partition, the cursor that takes the batch (None:
        none does), for ``mark``. The hot path of the service: ``receive`` written out inline."""
        cursors = self.cursors
        for partition, cursor in takes.items():  # lost between two slices
            if cursor is not None and cursors.get(partition) is not cursor:
                takes[partition] = None
        partitions = self.partitions
        active = self.active
        dirty_of = self.dirty
        applied = new_visitors = 0
        for event in events:
            fp = event.user_fingerprint
            actor = active.get(fp)
            partition = slot_of(fp) % partitions if actor is None else actor.partition
            if partition in takes:
                cursor = takes[partition]
            else:
                cursor = cursors.get(partition)
                if cursor is None:
                    self.foreign = True
                elif cursor.covers(txn):
                    cursor = None
                takes[partition] = cursor
            if cursor is None:
                continue
            if actor is not None:
                active.move_to_end(fp)  # most recently used
            else:
                actor = self._activate(fp, partition)
            applied += 1
            if actor.receive(touch_of(event), now):
                new_visitors += 1
                dirty = dirty_of.get(partition)
                if dirty is None:
                    dirty = dirty_of[partition] = {}
                dirty[fp] = actor
        self.stats.applied_events += applied
        self.unwritten_events += applied
        self.unwritten_visitors += new_visitors

    def mark(self, txn: int, takes: dict[int, Cursor | None]) -> None:
        """The batch of ``txn`` is applied to every partition that took it."""
        for partition, cursor in takes.items():
            if cursor is not None and self.cursors.get(partition) is cursor:
                cursor.mark(txn)

    def receive(self, fp: str, partition: int, touch: Touch, now: float) -> None:
        """Hand ``touch`` to the visitor's actor (``apply`` does the same, inline)."""
        actor = self.active.get(fp)
        if actor is not None:
            self.active.move_to_end(fp)  # most recently used
        else:
            actor = self._activate(fp, partition)
        self.stats.applied_events += 1
        if actor.receive(touch, now):
            self.unwritten_visitors += 1
            dirty = self.dirty.get(partition)
            if dirty is None:
                dirty = self.dirty[partition] = {}
            dirty[fp] = actor
        self.unwritten_events += 1

    def _activate(self, fp: str, partition: int) -> VisitorActor:
        """The visitor's actor, made active: back from retiring, or new."""
        actor = self.retiring.pop(fp, None)
        if actor is None:
            actor = VisitorActor(fp, partition)
            self.stats.activations += 1
        self.active[fp] = actor
        return actor

    # ------------------------------------------------------------------ passivation

    def evict(self, max_active: int) -> None:
        """Passivate the least recently used actors beyond ``max_active``."""
        active = self.active
        while len(active) > max_active:
            fp, actor = active.popitem(last=False)
            self._passivate(fp, actor)

    def passivate_idle(self, horizon: float) -> None:
        """Passivate the actors without an event since ``horizon``."""
        while self.active:
            fp, actor = next(iter(self.active.items()))
            if actor.last_message > horizon:
                break  # the rest were used more recently
            del self.active[fp]
            self._passivate(fp, actor)

    def _passivate(self, fp: str, actor: VisitorActor) -> None:
        self.stats.passivations += 1
        if actor.dirty:
            self.retiring[fp] = actor

    def count_dirty(self) -> int:
        """Visitors in memory with events not yet committed."""
        return sum(a.dirty for a in (*self.active.values(), *self.retiring.values()))

    # ------------------------------------------------------------------ ownership

    def lose(self, partition: int, why: str | None) -> bool:
        """Stop deriving ``partition`` (False if it was not owned): its unwritten events are
        left to its next owner, who applies them from the log. Logged with ``why``, unless
        None (the caller logs partitions lost together in one line)."""
        if self.cursors.pop(partition, None) is None:
            return False
        self.stats.partitions_lost += 1
        if why is not None:
            logger.info("partition %d %s", partition, why)
        for actor in self.dirty.pop(partition, {}).values():
            self.unwritten_events -= len(actor.pending or ())
            self.unwritten_visitors -= 1
        tables: tuple[dict[str, VisitorActor], ...] = (self.active, self.retiring)
        for table in tables:
            for fp in [fp for fp, actor in table.items() if actor.partition == partition]:
                del table[fp]
        return True

    # ------------------------------------------------------------------ writes

    def pending_by_partition(self) -> dict[int, tuple[int, int]]:
        """Visitors and events pending per partition, for every partition a write would take
        (with pending events, or a position that moved)."""
        return {
            p: _size(self.dirty.get(p, {}))
            for p, c in self.cursors.items()
            if c.moved or p in self.dirty
        }

    def begin_write(self, chunk: Iterable[int]) -> TakenChunk | None:
        """Take ``chunk``'s partitions for a write: their positions and every pending event of
        theirs, together (events applied after this are in later positions and later writes).
        None when none of them is owned any more."""
        cursors = {p: self.cursors[p] for p in chunk if p in self.cursors}
        if not cursors:
            return None
        actors = sorted(
            (a for p in cursors for a in self.dirty.pop(p, {}).values()),
            key=operator.attrgetter("user_fingerprint"),
        )
        positions = [position_of(c) for c in cursors.values()]
        for cursor in cursors.values():
            cursor.moved = False
        work = [(actor.user_fingerprint, actor.begin_write(), actor.known_days) for actor in actors]
        self.unwritten_events -= sum(len(touches) for _, touches, _ in work)
        self.unwritten_visitors -= len(work)
        return TakenChunk(cursors, actors, positions, work)

    def write_refused(self, taken: TakenChunk) -> None:
        """``taken`` was not written (its partitions' epochs moved on): the partitions still
        owned write it again next time."""
        for actor in taken.actors:
            if actor.partition in self.cursors and actor.inflight is not None:
                self.unwritten_events += len(actor.inflight)
                if actor.pending is None:
                    self.unwritten_visitors += 1
                actor.resume()
                self.dirty.setdefault(actor.partition, {})[actor.user_fingerprint] = actor
        for partition, cursor in taken.cursors.items():
            if self.cursors.get(partition) is cursor:
                cursor.moved = True

    def write_committed(self, taken: TakenChunk, deltas: list[ProfileDelta]) -> None:
        """``taken`` committed as ``deltas`` (one per actor)."""
        for cursor in taken.cursors.values():
            cursor.writes += 1
        for actor, delta in zip(taken.actors, deltas, strict=True):
            actor.written(delta)
        self.stats.profiles_written += len(deltas)

    def forget_written(self) -> None:
        """Let the retiring actors whose events are all written go."""
        for fp in [fp for fp, actor in self.retiring.items() if not actor.dirty]:
            del self.retiring[fp]


def position_of(cursor: Cursor) -> PartitionPosition:
    """``cursor`` as storage records it."""
    return PartitionPosition(
        cursor.partition, cursor.epoch, cursor.writes, cursor.horizon, frozenset(cursor.applied)
    )


def _size(dirty: dict[str, VisitorActor]) -> tuple[int, int]:
    """Pending visitors and events."""
    return len(dirty), sum(len(actor.pending or ()) for actor in dirty.values())
