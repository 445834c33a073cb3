"""The profiles actor: the owner of some partitions of the visitors, deriving their profiles from
the stored events as from a log (docs/scaling.md).

Ownership. The visitors are split into ``profiles.partitions`` partitions (``domain.partitions``);
each has one owner among the running instances at a time, held by a lease in the database
(``Storage.lease_round``, renewed three times per ``lease_ttl``). An instance takes its share of
the partitions (all of them when it runs alone), gives up what is beyond its share when others
join, and takes over the partitions of one that stopped renewing. Taking a partition raises its
epoch, so a former owner's late write is refused (``LeaseLost``).

Applying. Each owned partition has a :class:`~..domain.partitions.Cursor`: which log
transactions its derived state has applied. Events reach the owner two ways, and a cursor
makes sure each is applied once: the fast path (the batcher of this process hands over what each
commit stored, with the commit's log transaction) and the log itself, read every
``poll_interval`` (``Storage.read_log``): events stored by other instances, or before a restart
or a change of owner. Each visitor's events are handed, in order, to its :class:`VisitorActor`,
activated on its first event and passivated after ``idle_timeout`` without one, or when more
than ``max_active`` are active (least recently used first).

Writing. Every ``flush_interval`` (paced under load, see ``_write_due``) the deltas of the
waiting visitors are written, whole partitions per transaction, together with those partitions'
positions: derived state and the position it reflects never part, so a process that dies (even
by SIGKILL) loses nothing and counts nothing twice: the next owner replays the log from the
stored positions. A write whose reply was lost is recognised on retry (``writes``). After each
write the written visitors' fingerprints go on to the scorer. Each write also raises the written
profiles' ``version``, so what a dead owner wrote and did not score is found again: taking a
partition tells the scorer (``PartitionsTaken``), which scores those profiles first.

Reads. Insights and journeys read the visitor's stored rows and the log events they do not
reflect yet, in one snapshot (``Storage.visitor_view``), on whichever instance is asked: every
instance reads the same, exact figures as soon as an event is acknowledged.

Why virtual actors are objects driven by one task and not a task each: a task per visitor costs a
channel hop and a scheduler wake-up per event for no gain — a visitor's events arrive in order, one
batch at a time, and each visitor's messages are still handled one after another, in order.
"""

from __future__ import annotations

import collections
import itertools
import logging
import os
import time
import uuid
from collections.abc import Awaitable, Callable, Iterable, Iterator
from datetime import date, datetime
from typing import Any, TypeVar

import attrs
import trio

from ...config import ScoringSettings
from ...domain.insights import insights_document
from ...domain.journeys import JOURNEY_STEP_TYPE, higher_stage
from ...domain.partitions import Cursor, slot_of, target_share
from ...domain.profiles import ProfileDelta, ProfileState, Touch, delta_from_events, journey_rows, touch_of
from ...domain.timefmt import iso_datetime
from ...messages import PartitionsTaken, StoredBatch
from ...storage import LeaseLost, Storage, StorageError, StoredJourney

from ...storage._records import LogPage, PartitionPosition, VisitorView
from ...supervisor import Activity
from .._retry import until_it_succeeds
from ..storage import close_storages

__all__ = ["ProfileStats", "ProfilesActor", "VisitorActor", "live_state"]

logger = logging.getLogger(__package__)

T = TypeVar("T")
K = TypeVar("K")

#: Visitors per profile-write transaction (whole partitions: more when one partition has more),
#: with a rest after each (see ``write``): storage is never busy with profiles for long at a time,
#: so event commits are not held up. Not fewer: each transaction has a fixed cost (two thread
#: hops, a statement) (docs/performance.md).
WRITE_CHUNK = 500
#: Visitors per transaction when stopping or over ``max_unwritten_events``: no rests, fewer
#: transactions, done sooner.
URGENT_WRITE_CHUNK = 2000
#: Most events in one transaction, unless one partition has more: a chunk's deltas, touchpoints
#: and JSON exist all at once, and the allocator keeps what such a peak took (docs/performance.md).
CHUNK_EVENTS = 20_000
#: Fewest visitors in a write whose time sets the per-visitor cost the pacing expects.
COSTED_WRITE = 200
#: Events handled between two yields to the event loop (about 1 ms of work).
SLICE_EVENTS = 500
#: Events applied from the log and not yet written past which writes are urgent: a backlog (a
#: restart's replay, partitions taken over) is state that lags the events, to be written at once.
REPLAY_BACKLOG = 10_000
#: Seconds between two announcements of events stored for partitions owned elsewhere: their
#: owners read the log then rather than at their next poll.
ANNOUNCE_INTERVAL = 0.25
#: Lease rounds per ``lease_ttl``: a lease survives two failed renewals in a row.
LEASE_ROUNDS_PER_TTL = 3


@attrs.define(eq=False)
class VisitorActor:
    """One visitor of an owned partition: its events not yet written."""

    user_fingerprint: str
    partition: int
    # The events themselves, in order: turning them into a delta is left to the writer's thread,
    # off the event loop that serves requests.
    pending: list[Touch] | None = None  # not yet in a write
    inflight: list[Touch] | None = None  # being written
    last_message: float = 0.0  # trio clock
    # days storage already counts (written by this actor): not sent again. A tuple, not a set:
    # a visitor has a few, and 100,000 visitors' sets would weigh ~20 MB, their tuples ~5 MB.
    known_days: tuple[date, ...] = ()

    def receive(self, touch: Touch, now: float) -> bool:
        """Add ``touch`` (this visitor's next event) to the pending ones; True if it is the first
        pending since the last write began."""
        self.last_message = now
        pending = self.pending
        if pending is None:
            self.pending = [touch]
            return True
        pending.append(touch)
        return False

    def begin_write(self) -> list[Touch]:
        """Move the pending events in flight and return them."""
        assert self.pending is not None and self.inflight is None
        self.inflight, self.pending = self.pending, None
        return self.inflight

    def resume(self) -> None:
        """The write in flight was refused (nothing of it applied): its events go first into the next."""
        if self.inflight is not None:
            self.pending = self.inflight + (self.pending or [])
            self.inflight = None

    def written(self, delta: ProfileDelta) -> None:
        """The events in flight committed as ``delta``."""
        self.known_days = _with_new(self.known_days, delta.active_days)
        self.inflight = None

    @property
    def dirty(self) -> bool:
        return self.pending is not None or self.inflight is not None


@attrs.define
class ProfileStats:
    """Counters for operators and the benchmark (``GET /api/analytics/actors``)."""

    activations: int = 0
    passivations: int = 0
    writes: int = 0
    failed_writes: int = 0
    profiles_written: int = 0
    last_write_seconds: float = 0.0
    last_write_profiles: int = 0
    applied_events: int = 0  # each stored event once, whichever way it came
    replayed_events: int = 0  # of those, applied from the log rather than handed over by this process
    partitions_taken: int = 0
    partitions_lost: int = 0


def _owner_id() -> str:
    return f"{os.uname().nodename}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


@attrs.define(eq=False)
class ProfilesActor:
    """Owner of a share of the visitors' partitions; see the module docstring.

    ``storage`` is this actor's own (writes never queue behind event writes); ``reader`` serves
    the log reads, insights and journeys; ``leases`` the lease rounds (never behind a long
    write) and announcements; ``listener`` waits for other processes' announcements, on an
    engine that has them; ``scorer`` hears of every written profile and every partition taken;
    ``stop_writer``, when given, writes chunks beside ``storage`` while stopping (see ``write``).
    """

    storage: Storage
    inbox: trio.MemoryReceiveChannel[StoredBatch]
    reader: Storage | None = None
    leases: Storage | None = None
    listener: Storage | None = None
    scorer: trio.MemorySendChannel[list[str] | PartitionsTaken] | None = None
    stop_writer: Storage | None = None
    partitions: int = 64
    lease_ttl: float = 2.0
    poll_interval: float = 0.5
    owner: str = attrs.Factory(_owner_id)
    idle_timeout: float = 300.0
    max_active: int = 20_000
    flush_interval: float = 1.0
    max_write_share: float = 0.1
    max_touchpoints: int = 500
    max_unwritten_events: int = 500_000
    activity: Activity = attrs.Factory(Activity)
    stats: ProfileStats = attrs.Factory(ProfileStats)
    _cursors: dict[int, Cursor] = attrs.field(init=False, factory=dict)  # the partitions owned
    # least recently used first
    _active: collections.OrderedDict[str, VisitorActor] = attrs.field(init=False, factory=collections.OrderedDict)
    # passivated with a delta not yet written: kept until a write commits it
    _retiring: dict[str, VisitorActor] = attrs.field(init=False, factory=dict)
    # the actors with pending events, by partition: what a write of the partition takes
    _dirty: dict[int, dict[str, VisitorActor]] = attrs.field(init=False, factory=dict)
    _owners: int = attrs.field(init=False, default=1)  # live instances at the last lease round
    _to_release: set[int] = attrs.field(init=False, factory=set)
    _taken_untold: set[int] = attrs.field(init=False, factory=set)  # partitions taken, the scorer not yet told
    _taken_news: trio.Event = attrs.field(init=False, factory=trio.Event)
    _generation: int = attrs.field(init=False, default=0)  # runs so far: each has an owner id of its own
    _stopping: bool = attrs.field(init=False, default=False)
    _wake_writer: trio.CancelScope | None = attrs.field(init=False, default=None)
    _wake_router: trio.CancelScope | None = attrs.field(init=False, default=None)
    _poll_now: bool = attrs.field(init=False, default=True)
    _foreign: bool = attrs.field(init=False, default=False)  # events for partitions owned elsewhere, not announced yet
    # Transactions the fast path brought whole for every partition owned since: a poll does not
    # read them again (emptied when a partition is taken, whose cursor they may not cover).
    _delivered: set[int] = attrs.field(init=False, factory=set)
    _writer_done: trio.Event = attrs.field(init=False, factory=trio.Event)
    # Held while a batch or a page of the log is applied, slice by slice, until its transactions
    # are marked: a write never takes a partition's events and position in between.
    _applying: trio.Lock = attrs.field(init=False, factory=trio.Lock)
    _unwritten_events: int = attrs.field(init=False, default=0)  # handled, not yet in a write
    _unwritten_visitors: int = attrs.field(init=False, default=0)  # with pending events
    _replayed_unwritten: int = attrs.field(init=False, default=0)  # applied from the log since the last write began
    _last_batch_at: float = attrs.field(init=False, default=-1e9)  # trio clock: the fast path's latest batch
    _seconds_per_visitor: float = attrs.field(init=False, default=0.0)  # what the last write cost

    @property
    def active_count(self) -> int:
        return len(self._active)

    @property
    def owned_partitions(self) -> list[int]:
        return sorted(self._cursors)

    @property
    def run_owner(self) -> str:
        """The owner id of the current run (a restart after a crash starts over as another owner)."""
        return f"{self.owner}/{self._generation}"

    def stats_json(self) -> dict[str, Any]:
        s = self.stats
        return {
            "active": len(self._active), "maxActive": self.max_active, "retiring": len(self._retiring),
            "activations": s.activations, "passivations": s.passivations, "writes": s.writes,
            "failedWrites": s.failed_writes, "profilesWritten": s.profiles_written,
            "lastWriteSeconds": round(s.last_write_seconds, 3), "lastWriteProfiles": s.last_write_profiles,
            "unwrittenEvents": self._unwritten_events, "maxUnwrittenEvents": self.max_unwritten_events,
            "partitions": len(self._cursors), "partitionsTotal": self.partitions, "instances": self._owners,
            "appliedEvents": s.applied_events, "replayedEvents": s.replayed_events, "partitionsTaken": s.partitions_taken,
            "partitionsLost": s.partitions_lost,
        }

    def request_stop(self) -> None:
        """Write what is pending and return (the inbox usually closes first, when the batcher stops)."""
        self._stopping = True
        self._wake()

    def fenced(self, user_fingerprint: str, partition: int) -> None:
        """``user_fingerprint`` was erased and its ``partition`` fenced (its epoch raised): what
        this process holds of the partition in memory can no longer be written, and may hold the
        visitor. When owned here, it is dropped at once and its lease given up at the next lease
        round, which takes it again from its stored position (the erased events are gone there)."""
        if partition in self._cursors:
            self._lose(partition, "fenced by a visitor's erasure; taken again from its stored position")
            self._to_release.add(partition)

    # ------------------------------------------------------------------ reads

    @property
    def reader_storage(self) -> Storage:
        return self.reader or self.storage

    @property
    def _lease_storage(self) -> Storage:
        return self.leases or self.storage

    async def visitor(self, user_fingerprint: str) -> tuple[ProfileState | None, list[StoredJourney]]:
        """The visitor's profile and journeys as every event stored so far makes them (None and
        [] for a visitor of whom nothing is stored)."""
        view = await self.reader_storage.visitor_view(user_fingerprint, slot_of(user_fingerprint) % self.partitions)
        return live_state(view, user_fingerprint, self.max_touchpoints)

    async def live_profile(self, user_fingerprint: str) -> ProfileState | None:
        """The visitor's profile including every event stored so far, or None for a visitor of
        whom nothing is stored."""
        return (await self.visitor(user_fingerprint))[0]

    async def live_journeys(self, user_fingerprint: str) -> list[StoredJourney]:
        """The visitor's journeys including every event stored so far, in order of start."""
        return (await self.visitor(user_fingerprint))[1]

    async def insights(self, user_fingerprint: str, *, history: int, scoring: ScoringSettings,
                       now: datetime) -> dict[str, Any] | None:
        """The visitor's insights document (``domain.insights``): the live profile, scores
        computed now, and each model's latest ``history`` predictions; None for an unknown visitor."""
        profile, journeys = await self.visitor(user_fingerprint)
        if profile is None:
            return None
        predictions = await self.reader_storage.recent_predictions(user_fingerprint, history)
        return insights_document(profile, predictions, now, scoring, journeys=journeys,
                                 max_touchpoints=self.max_touchpoints)

    async def journey_step_number(self, user_fingerprint: str) -> int:
        """How many explicit journey steps the visitor has among the stored events: a stored
        step's ordinal, unless another step of the visitor's was stored meanwhile."""
        profile = await self.live_profile(user_fingerprint)
        return 0 if profile is None else profile.event_counts.get(JOURNEY_STEP_TYPE, 0)

    # ------------------------------------------------------------------ the tasks

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        # A restart after a crash starts over from the stored positions, as another owner: what
        # this object held may be ahead of storage or behind it.
        previous = self.run_owner if self._generation else None
        self._generation += 1
        self._reset()
        await self.storage.open()  # its own connections: profile writes never queue behind events
        for extra in self._extra_storages():
            await extra.open()
        try:
            leases = self._lease_storage
            await leases.ensure_partitions(self.partitions)
            if previous is not None:
                await leases.leave(previous)
            await self._lease_round()
            async with trio.open_nursery() as nursery:
                nursery.start_soon(self._write_periodically)
                nursery.start_soon(self._keep_leases)
                if self.scorer is not None:
                    nursery.start_soon(self._tell_scorer)
                if self.listener is not None and self.listener.announces_log:
                    nursery.start_soon(self._listen)
                if leases.announces_log:
                    nursery.start_soon(self._announce)
                task_status.started()
                await self._route()
                self._stopping = True
                self._wake()
                await self._writer_done.wait()
                nursery.cancel_scope.cancel()
            while await self.write():  # whatever was routed after the writer's last write
                pass
            with trio.move_on_after(self.lease_ttl) as scope:  # the others need not wait for the leases to expire
                scope.shield = True
                try:
                    await leases.leave(self.run_owner)
                except StorageError as exc:
                    logger.warning("could not give up the partitions at the stop (their leases expire in %g s): %s",
                                   self.lease_ttl, exc)
        finally:
            unwritten = sum(a.dirty for a in (*self._active.values(), *self._retiring.values()))
            if unwritten and self._stopping:
                logger.warning("stopped before %d visitor profile(s) were written: their partitions' next owner "
                               "applies their events from the log", unwritten)
            await close_storages(self.storage, *self._extra_storages())

    def _reset(self) -> None:
        self._cursors.clear()
        self._active.clear()
        self._retiring.clear()
        self._dirty.clear()
        self._delivered.clear()
        self._to_release.clear()
        self._taken_untold.clear()
        self._taken_news = trio.Event()
        self._unwritten_events = self._unwritten_visitors = self._replayed_unwritten = 0
        self._poll_now = True
        self._writer_done = trio.Event()

    def _extra_storages(self) -> list[Storage]:
        return [s for s in (self.reader, self.leases, self.listener, self.stop_writer) if s is not None]

    async def _route(self) -> None:
        next_idle_check = trio.current_time() + min(self.idle_timeout, 1.0)
        next_poll = trio.current_time()
        while not self._stopping:
            batch = None
            with trio.move_on_at(min(next_idle_check, next_poll)) as self._wake_router:
                try:  # only the wait: handling must never be cut short
                    batch = await self.inbox.receive()
                except trio.EndOfChannel:
                    return
            self._wake_router = None
            if batch is not None:
                await self._handle_in_slices(batch)
            now = trio.current_time()
            if now >= next_poll or self._poll_now:
                self._poll_now = False
                await self._catch_up()
                next_poll = trio.current_time() + self.poll_interval
            if now >= next_idle_check:
                self._passivate_idle()
                next_idle_check = trio.current_time() + min(self.idle_timeout, 1.0)
        while True:  # asked to stop: what the batcher already handed over still counts
            try:
                batch = self.inbox.receive_nowait()
            except (trio.WouldBlock, trio.EndOfChannel):
                return
            if batch.log_txn is not None:
                takes: dict[int, Cursor | None] = {}
                self._apply(batch.events, batch.log_txn, takes)
                self._mark(batch.log_txn, takes)

    async def _handle_in_slices(self, batch: StoredBatch) -> None:
        """Apply one stored batch, yielding to the event loop every ``SLICE_EVENTS`` events: a
        2,000-event batch handled in one step would hold every request for ~10 ms. Slices are
        handled in order, so each visitor's events stay in order."""
        events, txn = batch.events, batch.log_txn
        self._last_batch_at = trio.current_time()
        if txn is None:  # stored in several transactions: read them from the log
            self._poll_soon()
        else:
            takes: dict[int, Cursor | None] = {}
            claims = self.stats.partitions_taken
            async with self._applying:
                for start in range(0, len(events), SLICE_EVENTS):
                    if start:
                        await trio.lowlevel.checkpoint()
                    self._apply(events[start : start + SLICE_EVENTS], txn, takes)
                self._mark(txn, takes)
            if self.stats.partitions_taken == claims:  # none taken between slices: whole for every partition
                self._delivered.add(txn)
        self.activity.record(len(events))

    def _apply(self, events: list[Any], txn: int, takes: dict[int, Cursor | None]) -> None:
        """The fast path: ``events`` (of one batch, in order, or a slice of it) stored by log
        transaction ``txn``. Those of partitions owned here whose cursor does not cover ``txn``
        are applied; ``takes`` remembers, per partition, the cursor that takes the batch (None:
        none does), for ``_mark``. The hot path of the service: ``_receive`` written out inline."""
        now = trio.current_time()
        cursors = self._cursors
        for partition, cursor in takes.items():  # lost between two slices
            if cursor is not None and cursors.get(partition) is not cursor:
                takes[partition] = None
        partitions = self.partitions
        active = self._active
        dirty_of = self._dirty
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
                    self._foreign = True
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
        self._unwritten_events += applied
        self._unwritten_visitors += new_visitors
        self._after_receiving()

    def _mark(self, txn: int, takes: dict[int, Cursor | None]) -> None:
        """The batch of ``txn`` is applied to every partition that took it."""
        for partition, cursor in takes.items():
            if cursor is not None and self._cursors.get(partition) is cursor:
                cursor.mark(txn)

    def _activate(self, fp: str, partition: int) -> VisitorActor:
        """The visitor's actor, made active: back from retiring, or new."""
        actor = self._retiring.pop(fp, None)
        if actor is None:
            actor = VisitorActor(fp, partition)
            self.stats.activations += 1
        self._active[fp] = actor
        return actor

    def _receive(self, fp: str, partition: int, touch: Touch, now: float) -> None:
        """Hand ``touch`` to the visitor's actor (``_apply`` does the same, inline)."""
        actor = self._active.get(fp)
        if actor is not None:
            self._active.move_to_end(fp)  # most recently used
        else:
            actor = self._activate(fp, partition)
        self.stats.applied_events += 1
        if actor.receive(touch, now):
            self._unwritten_visitors += 1
            dirty = self._dirty.get(partition)
            if dirty is None:
                dirty = self._dirty[partition] = {}
            dirty[fp] = actor
        self._unwritten_events += 1

    def _after_receiving(self) -> None:
        active = self._active
        while len(active) > self.max_active:
            fp, actor = active.popitem(last=False)
            self._passivate(fp, actor)
        if self._unwritten_events > self.max_unwritten_events:
            self._wake()  # memory first: write now, whatever the pacing says

    async def _catch_up(self) -> None:
        """Read the log for what the owned partitions do not cover, and apply it, page by page."""
        while self._cursors:
            epochs = {p: c.epoch for p, c in self._cursors.items()}
            positions = [_position_of(c) for c in self._cursors.values()]
            low = min(c.horizon for c in positions)
            self._delivered = {txn for txn in self._delivered if txn >= low}
            try:
                page = await self.reader_storage.read_log(positions, self.partitions, skip=self._delivered)
            except StorageError as exc:
                logger.warning("reading the event log failed, will retry: %s", exc)
                return
            async with self._applying:
                await self._apply_page(page, epochs)
            if page.entries:
                self.stats.replayed_events += len(page.entries)
                self._replayed_unwritten += len(page.entries)
                self.activity.record(len(page.entries))
                if self._urgent:
                    self._wake()
            if not page.more:
                return

    async def _apply_page(self, page: LogPage, epochs: dict[int, int]) -> None:
        """Apply a page of the log read for the cursors of ``epochs``, in slices (as a batch);
        then move those cursors past it."""
        cursors = self._cursors
        now = trio.current_time()
        applied: set[tuple[int, int]] = set()
        for number, entry in enumerate(page.entries):
            if number and not number % SLICE_EVENTS:
                await trio.lowlevel.checkpoint()
                now = trio.current_time()
            cursor = cursors.get(entry.partition)
            if cursor is None or cursor.epoch != epochs.get(entry.partition):
                continue  # lost, or taken again, meanwhile
            if cursor.covers(entry.txn) and (entry.partition, entry.txn) not in applied:
                continue  # the fast path brought it meanwhile
            applied.add((entry.partition, entry.txn))
            self._receive(entry.user_fingerprint, entry.partition, entry.touch, now)
        self._after_receiving()
        for partition, txn in applied:
            cursors[partition].mark(txn)
        for partition, epoch in epochs.items():
            cursor = cursors.get(partition)
            if cursor is not None and cursor.epoch == epoch:
                cursor.advance(page.horizon, noted=bool(page.entries))

    async def _listen(self) -> None:
        """Read the log as soon as another process announces events (polling stays the fallback)."""
        assert self.listener is not None
        while True:
            try:
                # short waits: a stop waits for the one in progress (it holds a worker thread)
                if await self.listener.wait_for_log(min(self.poll_interval, 0.25)):
                    self._poll_soon()
            except StorageError as exc:
                logger.warning("waiting for announcements of stored events failed, will retry: %s", exc)
                await trio.sleep(self.poll_interval)

    async def _announce(self) -> None:
        """Announce, at most every ``ANNOUNCE_INTERVAL``, that events were stored here for
        partitions owned elsewhere."""
        while True:
            await trio.sleep(ANNOUNCE_INTERVAL)
            if self._foreign:
                self._foreign = False
                try:
                    await self._lease_storage.announce_log()
                except StorageError as exc:
                    # the owners read the log at their next poll anyway; the lease rounds report outages
                    logger.debug("announcing stored events failed: %s", exc)

    def _poll_soon(self) -> None:
        self._poll_now = True
        if self._wake_router is not None:
            self._wake_router.cancel()

    def _passivate(self, fp: str, actor: VisitorActor) -> None:
        self.stats.passivations += 1
        if actor.dirty:
            self._retiring[fp] = actor

    def _passivate_idle(self) -> None:
        horizon = trio.current_time() - self.idle_timeout
        while self._active:
            fp, actor = next(iter(self._active.items()))
            if actor.last_message > horizon:
                break  # the rest were used more recently
            del self._active[fp]
            self._passivate(fp, actor)

    # ------------------------------------------------------------------ ownership

    async def _keep_leases(self) -> None:
        failures = 0
        while True:
            await trio.sleep(self.lease_ttl / LEASE_ROUNDS_PER_TTL)
            try:
                await self._lease_round()
                failures = 0
            except StorageError as exc:
                failures += 1
                if failures == 1 or failures % 20 == 0:
                    logger.error("renewing the partition leases failed (%d in a row): %s", failures, exc)

    async def _lease_round(self) -> None:
        """Renew the leases, give up what is beyond this instance's share, take what is free."""
        share = target_share(self.partitions, self._owners)
        if len(self._cursors) > share:  # others joined: the highest partitions go to them
            for partition in sorted(self._cursors)[share:]:
                self._lose(partition, "given up to another instance")
                self._to_release.add(partition)
        release = sorted(self._to_release)
        result = await self._lease_storage.lease_round(self.run_owner, partitions=self.partitions, ttl=self.lease_ttl,
                                                       release=release, claim=not self._stopping)
        self._to_release.difference_update(release)
        self._owners = result.owners
        for partition, cursor in list(self._cursors.items()):
            if result.owned.get(partition) != cursor.epoch:
                self._lose(partition, "taken over by another instance")
        claimed = {claim.partition for claim in result.claimed}
        if claimed:
            self._delivered.clear()
        for claim in result.claimed:
            self._cursors[claim.partition] = Cursor(claim.partition, claim.horizon, set(claim.applied),
                                                    epoch=claim.epoch, writes=claim.writes)
        self._to_release.update(p for p in result.owned if p not in self._cursors and p not in claimed)
        if claimed:
            self._taken_untold.update(claimed)
            self._taken_news.set()
            self.stats.partitions_taken += len(claimed)
            logger.info("took %d partition(s) of %d (%d instance(s) alive): %s", len(claimed), self.partitions,
                        result.owners, _ranges(sorted(claimed)))
            self._poll_soon()

    async def _tell_scorer(self) -> None:
        """Tell the scorer of each partition taken (apart from the lease rounds, which must not
        wait for the scorer's inbox)."""
        assert self.scorer is not None
        while True:
            await self._taken_news.wait()
            self._taken_news = trio.Event()
            taken = frozenset(self._taken_untold)
            self._taken_untold.clear()
            await self.scorer.send(PartitionsTaken(taken, self.partitions))

    def _lose(self, partition: int, why: str) -> None:
        """Stop deriving ``partition``: its unwritten events are left to its next owner, who
        applies them from the log."""
        if self._cursors.pop(partition, None) is None:
            return
        self.stats.partitions_lost += 1
        logger.info("partition %d %s", partition, why)
        for actor in self._dirty.pop(partition, {}).values():
            self._unwritten_events -= len(actor.pending or ())
            self._unwritten_visitors -= 1
        for table in (self._active, self._retiring):
            for fp in [fp for fp, actor in table.items() if actor.partition == partition]:
                del table[fp]

    # ------------------------------------------------------------------ writes

    def _wake(self) -> None:
        if self._wake_writer is not None:
            self._wake_writer.cancel()

    async def _write_periodically(self) -> None:
        try:
            idle_since = trio.current_time()  # end of the last write
            next_check = idle_since + self.flush_interval
            while True:
                with trio.CancelScope(deadline=next_check) as self._wake_writer:
                    await trio.sleep_forever()
                self._wake_writer = None
                now = trio.current_time()
                next_check = now + self.flush_interval
                if not (self._urgent or self._write_due(now - idle_since)):
                    continue
                stopping = self._stopping
                await self.write()
                if stopping:
                    while await self.write():  # what arrived while the last write ran
                        pass
                    return
                idle_since = trio.current_time()
                next_check = idle_since + self.flush_interval
                if self._urgent:  # asked to stop, or fell further behind, while that write ran
                    next_check = idle_since
        finally:
            self._writer_done.set()

    @property
    def _ingest_idle(self) -> bool:
        """No events stored here for a flush interval: writes cannot hold up any."""
        return trio.current_time() - self._last_batch_at > self.flush_interval

    @property
    def _urgent(self) -> bool:
        """Stopping, over the memory bound, or behind the log: write as fast as storage allows."""
        return (self._stopping or self._unwritten_events > self.max_unwritten_events
                or self._replayed_unwritten > REPLAY_BACKLOG)

    def _write_due(self, idle: float) -> bool:
        """Pacing: a write is due when what it would cost (the visitors waiting, at what the last
        write cost per visitor) is at most ``max_write_share`` of the time it would end, counted
        from the last write's end: storage then spends at most that share on profile writes,
        whatever the load. Under a flood writes come rarely and coalesce many events each. With
        no events stored here for a flush interval (a replay, the log of other instances) there
        is nothing to hold up: due at once. Moved positions alone are written once a flush
        interval has passed."""
        if self._unwritten_visitors == 0:
            return any(c.moved for c in self._cursors.values())
        if self._ingest_idle:
            return True
        cost = self._unwritten_visitors * self._seconds_per_visitor
        return cost <= self.max_write_share * (idle + cost)

    async def write(self) -> float:
        """Write every pending delta with the positions of their partitions, whole partitions per
        transaction (``WRITE_CHUNK`` visitors or so; each retried until it commits), hand the
        written visitors' fingerprints to the scorer; return the seconds it took (0 when nothing
        was pending). From a stop on, with a ``stop_writer``, two transactions are in flight at a
        time, one on each storage."""
        # sizes as of now; each chunk takes its partitions' pending actors when it begins
        by_partition = {p: _size(self._dirty.get(p, {})) for p, c in self._cursors.items() if c.moved or p in self._dirty}
        if not by_partition:
            return 0.0
        visitors = sum(size[0] for size in by_partition.values())
        chunks = _chunks(by_partition, URGENT_WRITE_CHUNK if self._urgent else WRITE_CHUNK)
        self._replayed_unwritten = 0
        took = 0.0  # time of the attempts that committed: waiting out an outage is not storage work
        chunk_took = 0.0
        for number, chunk in enumerate(chunks):
            if self._stopping and self.stop_writer is not None:  # from the stop on, mid-write too
                took += await self._write_on_each(itertools.chain([chunk], chunks), (self.storage, self.stop_writer))
                break
            if number and not (self._urgent or self._ingest_idle):
                # Spread the write: storage busy with it for a burst would hold up event commits
                # (and so acknowledgements) as long; in short chunks with rests between them it
                # stays within max_write_share all along.
                await trio.sleep(chunk_took * (1 / self.max_write_share - 1))
            chunk_took = await self._write_chunk(chunk, self.storage)
            took += chunk_took
        if visitors >= COSTED_WRITE:  # a smaller write measures its fixed overhead more than its rows
            self._seconds_per_visitor = took / visitors
        for fp in [fp for fp, actor in self._retiring.items() if not actor.dirty]:
            del self._retiring[fp]
        self.stats.writes += 1
        self.stats.last_write_seconds = took
        self.stats.last_write_profiles = visitors
        return took or 1e-9  # something was written (positions alone take next to nothing)

    async def _write_on_each(self, chunks: Iterator[list[int]], storages: tuple[Storage, ...]) -> float:
        """The chunks shared out among ``storages``, one transaction in flight on each. For the last
        write of a stop, whose time is mostly PostgreSQL's: two connections put it on two cores.
        Chunks hold distinct partitions, so the two transactions lock distinct rows."""
        took = 0.0

        async def drain(storage: Storage) -> None:
            nonlocal took
            for chunk in chunks:  # one shared iterator: each takes the next chunk when it is free
                took += await self._write_chunk(chunk, storage)

        async with trio.open_nursery() as nursery:
            for storage in storages:
                nursery.start_soon(drain, storage)
        return took

    async def _write_chunk(self, chunk: list[int], storage: Storage) -> float:
        """Write ``chunk``'s partitions: their positions and every pending event of theirs, taken
        together now (events applied after this are in later positions and later writes)."""
        async with self._applying:  # not in the middle of a batch: its events and its mark go together
            cursors = {p: self._cursors[p] for p in chunk if p in self._cursors}  # some may be lost by now
            if not cursors:
                return 0.0
            actors = sorted((a for p in cursors for a in self._dirty.pop(p, {}).values()), key=_fingerprint)
            positions = [_position_of(c) for c in cursors.values()]
            for cursor in cursors.values():
                cursor.moved = False
            work = [(actor.user_fingerprint, actor.begin_write(), actor.known_days) for actor in actors]
        self._unwritten_events -= sum(len(touches) for _, touches, _ in work)
        self._unwritten_visitors -= len(work)
        deltas = await trio.to_thread.run_sync(_deltas_of, work) if work else []
        took = 0.0

        async def attempt() -> None:
            nonlocal took
            began = time.perf_counter()
            await storage.apply_profile_deltas(deltas, max_touchpoints=self.max_touchpoints, return_rows=False,
                                               positions=positions, owner=self.run_owner)
            took = time.perf_counter() - began

        try:
            await self._with_retry(attempt, "write profiles")
        except LeaseLost as exc:
            for partition in exc.partitions:
                self._lose(partition, "taken over by another instance before its write")
            for actor in actors:  # the partitions still owned write again next time
                if actor.partition in self._cursors and actor.inflight is not None:
                    self._unwritten_events += len(actor.inflight)
                    if actor.pending is None:
                        self._unwritten_visitors += 1
                    actor.resume()
                    self._dirty.setdefault(actor.partition, {})[actor.user_fingerprint] = actor
            for partition, cursor in cursors.items():
                if self._cursors.get(partition) is cursor:
                    cursor.moved = True
            return 0.0
        for partition, cursor in cursors.items():
            cursor.writes += 1
        for actor, delta in zip(actors, deltas, strict=True):
            actor.written(delta)
        self.stats.profiles_written += len(deltas)
        if self.scorer is not None and actors:
            await self.scorer.send([actor.user_fingerprint for actor in actors])
        return took

    async def _with_retry(self, operation: Callable[[], Awaitable[T]], what: str) -> T:
        def failed(_: StorageError) -> None:
            self.stats.failed_writes += 1

        return await until_it_succeeds(operation, logger=logger, what=what, on_failure=failed, give_up=(LeaseLost,))


def live_state(view: VisitorView, user_fingerprint: str,
               max_touchpoints: int) -> tuple[ProfileState | None, list[StoredJourney]]:
    """The visitor's profile and journeys: the stored rows of ``view`` plus its tail. Sessions
    and days of the tail that storage does not count yet count as new."""
    if not view.tail:
        return view.profile, view.journeys
    delta = delta_from_events(user_fingerprint, view.tail)
    base = view.profile or ProfileState(user_fingerprint=user_fingerprint)
    live = base.plus(delta)
    live.total_sessions += len(delta.sessions.keys() - view.keys.sessions)
    live.days_active += len(delta.active_days - view.keys.days)
    return live, _with_pending(view.journeys, delta, max_touchpoints)


def _with_pending(stored: list[StoredJourney], pending: ProfileDelta, max_touchpoints: int) -> list[StoredJourney]:
    journeys = {j.session_id: j for j in stored}
    for row in journey_rows(pending):
        points = [{**p, "at": iso_datetime(p["at"])} for p in row["touchpoints"]]
        old = journeys.get(row["session_id"])
        if old is None:
            journeys[row["session_id"]] = StoredJourney(
                row["session_id"], points[:max_touchpoints], row["stage"], row["first_source"], row["last_source"],
                row["started_at"], row["last_at"],
            )
        else:
            room = max(0, max_touchpoints - len(old.touchpoints))
            journeys[row["session_id"]] = attrs.evolve(
                old,
                touchpoints=old.touchpoints + points[:room],
                stage=higher_stage(old.stage, row["stage"]),
                last_touch_source=row["last_source"] or old.last_touch_source,
                started_at=min(old.started_at, row["started_at"]),
                updated_at=max(old.updated_at, row["last_at"]),
            )
    return sorted(journeys.values(), key=lambda j: j.started_at)


def _position_of(cursor: Cursor) -> PartitionPosition:
    return PartitionPosition(cursor.partition, cursor.epoch, cursor.writes, cursor.horizon, frozenset(cursor.applied))


def _deltas_of(work: list[tuple[str, list[Touch], tuple[date, ...]]]) -> list[ProfileDelta]:
    """Each visitor's events as a delta, without the days storage already has (runs in a worker
    thread: it touches only what it is given)."""
    deltas = []
    for fp, events, known_days in work:
        delta = delta_from_events(fp, events)
        delta.active_days.difference_update(known_days)
        deltas.append(delta)
    return deltas


def _size(dirty: dict[str, VisitorActor]) -> tuple[int, int]:
    """Pending visitors and events."""
    return len(dirty), sum(len(actor.pending or ()) for actor in dirty.values())


def _chunks(by_partition: dict[int, tuple[int, int]], visitors: int) -> Iterator[list[int]]:
    """Whole partitions (in order), grouped into chunks of at most ``visitors`` pending actors
    and ``CHUNK_EVENTS`` pending events (as ``by_partition`` counts them), unless one partition
    alone has more."""
    chunk: list[int] = []
    size = events = 0
    for partition in sorted(by_partition):
        actors, pending = by_partition[partition]
        if chunk and (size + actors > visitors or events + pending > CHUNK_EVENTS):
            yield chunk
            chunk, size, events = [], 0, 0
        chunk.append(partition)
        size += actors
        events += pending
    if chunk:
        yield chunk


def _ranges(numbers: list[int]) -> str:
    """``[0, 1, 2, 5]`` as ``0-2, 5``."""
    parts = []
    for _, group in itertools.groupby(enumerate(numbers), lambda pair: pair[1] - pair[0]):
        run = [n for _, n in group]
        parts.append(str(run[0]) if len(run) == 1 else f"{run[0]}-{run[-1]}")
    return ", ".join(parts)


def _with_new(known: tuple[K, ...], items: Iterable[K]) -> tuple[K, ...]:
    new = tuple(item for item in items if item not in known)
    return known + new if new else known


def _fingerprint(actor: VisitorActor) -> str:
    return actor.user_fingerprint
