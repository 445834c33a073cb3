"""The profiles actor: the owner of some partitions of the visitors, deriving their profiles from
the stored events as from a log (docs/scaling.md).

:class:`ProfilesActor` is the one actor others construct; it runs the tasks and decides when
each part acts, the parts hold the rest: which partitions it owns (``_leases``), which visitor
actor each stored event goes to (``_routing``), the log read for what the fast path did not bring
(``_catch_up``), when to write (``_pacing``), the writes themselves (``_writer``), and reads
(``_reads``).

Each owned partition applies every stored event once, whichever way it came, and writes the
profiles it derived together with its position in the log: a process that dies loses nothing
and counts nothing twice, since the partition's next owner replays the log from there.
"""

from __future__ import annotations

import itertools
import logging
import os
import uuid
from collections.abc import Mapping
from datetime import datetime
from typing import Any

import attrs
import trio

from ...config import ScoringSettings
from ...domain.learned import NO_MODELS, LearnedModel
from ...domain.partitions import Cursor
from ...domain.profiles import ProfileState
from ...messages import PartitionsTaken, StoredBatch
from ...storage import Storage, StorageError, StoredJourney
from ...supervisor import Activity
from ..storage import close_storages
from ._catch_up import SLICE_EVENTS, CatchUp, announce, listen
from ._leases import Leases
from ._pacing import Pacing, is_urgent, rest_after
from ._reads import journey_steps, read_insights, read_visitor
from ._routing import Router
from ._stats import ProfileStats, stats_document
from ._writer import URGENT_WRITE_CHUNK, WRITE_CHUNK, ChunkWriter, chunks

__all__ = ["ProfilesActor"]

logger = logging.getLogger(__package__)  # the actor's one logger, whichever part speaks


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
    The storages, ``scorer``, ``partitions``, ``activity`` and ``stats`` are taken when the
    actor is constructed (its parts hold them); the other settings are read whenever used.
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
    # The parts (built from the fields above), kept across runs: each run resets their state.
    _router: Router = attrs.field(init=False)
    _leases: Leases = attrs.field(init=False)
    _catch_up: CatchUp = attrs.field(init=False)
    _writer: ChunkWriter = attrs.field(init=False)
    _pacing: Pacing = attrs.field(init=False, factory=Pacing)
    # Held while a batch or a page of the log is applied, slice by slice, until its transactions
    # are marked: a write never takes a partition's events and position in between.
    _applying: trio.Lock = attrs.field(init=False, factory=trio.Lock)
    _generation: int = attrs.field(init=False, default=0)  # runs so far: each has its own owner id
    _stopping: bool = attrs.field(init=False, default=False)
    _wake_writer: trio.CancelScope | None = attrs.field(init=False, default=None)
    _wake_router: trio.CancelScope | None = attrs.field(init=False, default=None)
    _poll_now: bool = attrs.field(init=False, default=True)
    _writer_done: trio.Event = attrs.field(init=False, factory=trio.Event)

    def __attrs_post_init__(self) -> None:
        self._router = Router(self.partitions, self.stats)
        self._leases = Leases(
            self.leases or self.storage, self._router, self.stats, self.partitions, self._taken
        )
        self._catch_up = CatchUp(
            self.reader_storage,
            self._router,
            self.stats,
            self.activity,
            self._applying,
            received=self._after_receiving,
            replayed=self._wake_if_urgent,
        )
        self._writer = ChunkWriter(self._router, self.stats, self._applying, self.scorer)

    @property
    def active_count(self) -> int:
        return len(self._router.active)

    @property
    def owned_partitions(self) -> list[int]:
        return sorted(self._router.cursors)

    @property
    def run_owner(self) -> str:
        """The owner id of the current run (a restart after a crash starts over as another
        owner)."""
        return f"{self.owner}/{self._generation}"

    def stats_json(self) -> dict[str, Any]:
        router = self._router
        return stats_document(
            self.stats,
            active=len(router.active),
            max_active=self.max_active,
            retiring=len(router.retiring),
            unwritten_events=router.unwritten_events,
            max_unwritten_events=self.max_unwritten_events,
            partitions=len(router.cursors),
            partitions_total=self.partitions,
            instances=self._leases.owners,
        )

    def request_stop(self) -> None:
        """Write what is pending and return (the inbox usually closes first, when the batcher
        stops)."""
        self._stopping = True
        self._wake()

    def fenced(self, user_fingerprint: str, partition: int) -> None:
        """``user_fingerprint`` was erased and its ``partition`` fenced (its epoch raised): what
        this process holds of the partition in memory can no longer be written, and may hold the
        visitor. When owned here, it is dropped at once and its lease given up at the next lease
        round, which takes it again from its stored position (the erased events are gone there)."""
        self._leases.give_up(
            partition, "fenced by a visitor's erasure; taken again from its stored position"
        )

    # ------------------------------------------------------------------ reads

    @property
    def reader_storage(self) -> Storage:
        return self.reader or self.storage

    async def visitor(
        self, user_fingerprint: str
    ) -> tuple[ProfileState | None, list[StoredJourney]]:
        """The visitor's profile and journeys as every event stored so far makes them (None and
        [] for a visitor of whom nothing is stored)."""
        return await read_visitor(
            self.reader_storage,
            user_fingerprint,
            partitions=self.partitions,
            max_touchpoints=self.max_touchpoints,
        )

    async def live_profile(self, user_fingerprint: str) -> ProfileState | None:
        """The visitor's profile including every event stored so far, or None for a visitor of
        whom nothing is stored."""
        return (await self.visitor(user_fingerprint))[0]

    async def live_journeys(self, user_fingerprint: str) -> list[StoredJourney]:
        """The visitor's journeys including every event stored so far, in order of start."""
        return (await self.visitor(user_fingerprint))[1]

    async def insights(
        self,
        user_fingerprint: str,
        *,
        history: int,
        scoring: ScoringSettings,
        now: datetime,
        learned: Mapping[str, LearnedModel] = NO_MODELS,
    ) -> dict[str, Any] | None:
        """The visitor's insights document (``domain.insights``): the live profile, scores
        computed now (with the ``learned`` models in use), and each model's latest ``history``
        predictions; None for an unknown visitor."""
        return await read_insights(
            self.reader_storage,
            user_fingerprint,
            partitions=self.partitions,
            max_touchpoints=self.max_touchpoints,
            history=history,
            scoring=scoring,
            now=now,
            learned=learned,
        )

    async def journey_step_number(self, user_fingerprint: str) -> int:
        """How many explicit journey steps the visitor has among the stored events: a stored
        step's ordinal, unless another step of the visitor's was stored meanwhile."""
        return journey_steps(await self.live_profile(user_fingerprint))

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
            leases = self._leases.storage
            await leases.ensure_partitions(self.partitions)
            if previous is not None:
                await leases.leave(previous)
            await self._lease_round()
            async with trio.open_nursery() as nursery:
                nursery.start_soon(self._write_periodically)
                nursery.start_soon(self._leases.keep, self._lease_round, self.lease_ttl)
                if self.scorer is not None:
                    nursery.start_soon(self._leases.tell_scorer, self.scorer)
                if self.listener is not None and self.listener.announces_log:
                    nursery.start_soon(listen, self.listener, self.poll_interval, self._poll_soon)
                if leases.announces_log:
                    nursery.start_soon(announce, leases, self._router)
                task_status.started()
                await self._route()
                self._stopping = True
                self._wake()
                await self._writer_done.wait()
                nursery.cancel_scope.cancel()
            while await self.write():  # whatever was routed after the writer's last write
                pass
            # the others need not wait for the leases to expire
            with trio.move_on_after(self.lease_ttl) as scope:
                scope.shield = True
                try:
                    await leases.leave(self.run_owner)
                except StorageError as exc:
                    logger.warning(
                        "could not give up the partitions at the stop"
                        " (their leases expire in %g s): %s",
                        self.lease_ttl,
                        exc,
                    )
        finally:
            unwritten = self._router.count_dirty()
            if unwritten and self._stopping:
                logger.warning(
                    "stopped before %d visitor profile(s) were written: their partitions' next"
                    " owner applies their events from the log",
                    unwritten,
                )
            await close_storages(self.storage, *self._extra_storages())

    def _reset(self) -> None:
        self._router.reset()
        self._leases.reset()
        self._catch_up.delivered.clear()
        self._poll_now = True
        self._writer_done = trio.Event()

    def _extra_storages(self) -> list[Storage]:
        extras = (self.reader, self.leases, self.listener, self.stop_writer)
        return [s for s in extras if s is not None]

    async def _lease_round(self) -> None:
        await self._leases.round(self.run_owner, ttl=self.lease_ttl, claim=not self._stopping)

    def _taken(self) -> None:
        """A lease round took partitions: the fast path's whole transactions may not be whole
        for them, and their events are to be read from the log now."""
        self._catch_up.delivered.clear()
        self._poll_soon()

    # ------------------------------------------------------------------ routing

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
                await self._catch_up.catch_up()
                next_poll = trio.current_time() + self.poll_interval
            if now >= next_idle_check:
                self._router.passivate_idle(trio.current_time() - self.idle_timeout)
                next_idle_check = trio.current_time() + min(self.idle_timeout, 1.0)
        while True:  # asked to stop: what the batcher already handed over still counts
            try:
                batch = self.inbox.receive_nowait()
            except (trio.WouldBlock, trio.EndOfChannel):
                return
            if batch.log_txn is not None:
                takes: dict[int, Cursor | None] = {}
                self._apply(batch.events, batch.log_txn, takes)
                self._router.mark(batch.log_txn, takes)

    async def _handle_in_slices(self, batch: StoredBatch) -> None:
        """Apply one stored batch, yielding to the event loop every ``SLICE_EVENTS`` events:
        handled in one step, a large batch would hold up every request. Slices are handled in
        order, so each visitor's events stay in order."""
        events, txn = batch.events, batch.log_txn
        self._pacing.last_batch_at = trio.current_time()
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
                self._router.mark(txn, takes)
            if self.stats.partitions_taken == claims:  # none taken between slices: whole for all
                self._catch_up.delivered.add(txn)
        self.activity.record(len(events))

    def _apply(self, events: list[Any], txn: int, takes: dict[int, Cursor | None]) -> None:
        self._router.apply(events, txn, takes, trio.current_time())
        self._after_receiving()

    def _after_receiving(self) -> None:
        self._router.evict(self.max_active)
        if self._router.unwritten_events > self.max_unwritten_events:
            self._wake()  # memory first: write now, whatever the pacing says

    def _poll_soon(self) -> None:
        self._poll_now = True
        if self._wake_router is not None:
            self._wake_router.cancel()

    # ------------------------------------------------------------------ writes

    def _wake(self) -> None:
        if self._wake_writer is not None:
            self._wake_writer.cancel()

    def _wake_if_urgent(self) -> None:
        if self._urgent:
            self._wake()

    @property
    def _urgent(self) -> bool:
        router = self._router
        return is_urgent(
            stopping=self._stopping,
            unwritten_events=router.unwritten_events,
            max_unwritten_events=self.max_unwritten_events,
            replayed_unwritten=router.replayed_unwritten,
        )

    def _ingest_idle(self) -> bool:
        return self._pacing.ingest_idle(trio.current_time(), self.flush_interval)

    def _write_due(self, idle: float) -> bool:
        return self._pacing.write_due(
            now=trio.current_time(),
            idle=idle,
            waiting=self._router.unwritten_visitors,
            positions_moved=any(c.moved for c in self._router.cursors.values()),
            flush_interval=self.flush_interval,
            max_write_share=self.max_write_share,
        )

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

    async def write(self) -> float:
        """Write every pending delta with the positions of their partitions, whole partitions per
        transaction (``WRITE_CHUNK`` visitors or so; each retried until it commits), hand the
        written visitors' fingerprints to the scorer; return the seconds it took (0 when nothing
        was pending). From a stop on, with a ``stop_writer``, two transactions are in flight at a
        time, one on each storage."""
        # sizes as of now; each chunk takes its partitions' pending actors when it begins
        by_partition = self._router.pending_by_partition()
        if not by_partition:
            return 0.0
        visitors = sum(size[0] for size in by_partition.values())
        pieces = chunks(by_partition, URGENT_WRITE_CHUNK if self._urgent else WRITE_CHUNK)
        self._router.replayed_unwritten = 0
        took = 0.0  # time of the attempts that committed: waiting out an outage is not storage work
        chunk_took = 0.0
        for number, chunk in enumerate(pieces):
            if self._stopping and self.stop_writer is not None:  # from the stop on, mid-write too
                took += await self._writer.write_on_each(
                    itertools.chain([chunk], pieces),
                    (self.storage, self.stop_writer),
                    owner=self.run_owner,
                    max_touchpoints=self.max_touchpoints,
                )
                break
            if number and not (self._urgent or self._ingest_idle()):
                await trio.sleep(rest_after(chunk_took, self.max_write_share))
            chunk_took = await self._writer.write_chunk(
                chunk, self.storage, owner=self.run_owner, max_touchpoints=self.max_touchpoints
            )
            took += chunk_took
        self._pacing.measured(visitors, took)
        self._router.forget_written()
        self.stats.writes += 1
        self.stats.last_write_seconds = took
        self.stats.last_write_profiles = visitors
        return took or 1e-9  # something was written (positions alone take next to nothing)
