"""The profiles actor: a router of per-visitor virtual actors, and their writer.

It receives the events each commit stored (from the batcher's subscriber channel) and hands each
visitor's events, in order, to that visitor's :class:`VisitorActor`. A visitor actor is
*activated* on its first message and *passivated* after ``profiles.idle_timeout`` without
messages, or when more than ``profiles.max_active`` are active (least recently used first).

Reads and writes. A visitor's live profile is the stored profile plus the deltas not yet written
(:meth:`ProfilesActor.live_profile`), so insights reflect an event as soon as this actor has
handled it — milliseconds after the acknowledgement — whatever the write interval. Storage gets
the deltas of all visitors every ``profiles.flush_interval``, ``WRITE_CHUNK`` visitors per
transaction with rests between them (commutative: counts added, times least/greatest, journeys appended). Writes read
nothing back: an actor reads its stored row only when someone asks for the visitor's live
profile (once after each write), so neither activation nor a write costs a read.
Writes are paced (``_write_due``): one starts when its expected cost — the visitors waiting,
at what the last write cost per visitor — is at most ``max_write_share`` of the time since the
last write ended plus that cost. Under load writes space out, coalesce more events each, and keep
storage busy at most ``max_write_share`` of the time; ``max_unwritten_events`` bounds the memory
that costs (past it a write starts at once).
After each write the written visitors' fingerprints go on to the scorer.

Why virtual actors are objects driven by one task and not a task each: a task per visitor costs a
channel hop and a scheduler wake-up per event for no gain — a visitor's events arrive in order, one
batch at a time, and each visitor's messages are still handled one after another, in order.

What is guaranteed (docs/architecture.md): a visitor's deltas live on its actor object, not in
a task, so a crash and restart of this actor loses none; a delta leaves memory only after the
transaction that wrote it committed. A process that dies loses the deltas not yet written (those
of the last write interval — longer under load, when writes are paced, or while storage is away;
the events themselves are stored; ``max_unwritten_events`` bounds how many, give or take the events
handled while a write runs); a lost commit reply followed by a retry can add a delta twice.
"""

from __future__ import annotations

import collections
import itertools
import logging
import time
from collections.abc import Awaitable, Callable, Iterable, Iterator
from datetime import date, datetime
from typing import Any, TypeVar

import attrs
import trio

from ..config import ScoringSettings
from ..domain.insights import insights_document
from ..domain.journeys import JOURNEY_STEP_TYPE, higher_stage
from ..domain.profiles import ProfileDelta, ProfileState, Touch, delta_from_events, journey_rows, touch_of
from ..domain.timefmt import iso_datetime
from ..messages import Event
from ..storage import Storage, StorageError, StoredJourney
from ..supervisor import Activity
from ._retry import until_it_succeeds
from .storage import close_storages

__all__ = ["ProfileStats", "ProfilesActor", "VisitorActor"]

logger = logging.getLogger(__name__)

T = TypeVar("T")
K = TypeVar("K")

#: Visitors per profile-write transaction, with a rest after each (see ``write``): storage is
#: never busy with profiles for long at a time, so event commits are not held up. Not fewer: each
#: transaction has a fixed cost (two thread hops, a statement), and under a flood 50-visitor
#: chunks cost ~1 ms per visitor against ~0.25 ms for 500 (docs/performance.md).
WRITE_CHUNK = 500
#: Visitors per transaction when stopping or over ``max_unwritten_events``: no rests, fewer
#: transactions, done sooner.
URGENT_WRITE_CHUNK = 2000
#: Most events in one transaction, whatever its visitors: a chunk's deltas, touchpoints and JSON
#: exist all at once, and the allocator keeps what such a peak took (10,000 visitors with ~50
#: unwritten events each made 2,000-visitor chunks of 100,000 touchpoints: RSS rose in ~50 MB steps).
CHUNK_EVENTS = 20_000
#: Fewest visitors in a write whose time sets the per-visitor cost the pacing expects.
COSTED_WRITE = 200
#: Events handled between two yields to the event loop (about 1 ms of work).
SLICE_EVENTS = 500
#: Latest explicit journey steps remembered as handled: enough for every step request waiting
#: for its number (a step's answer waits at most a second).
HANDLED_STEPS_KEPT = 10_000


@attrs.define(eq=False)
class VisitorActor:
    """One visitor: the profile as storage last returned it, and what its events added since."""

    user_fingerprint: str
    stored: ProfileState | None = None  # as last read; None until read, and again after each write
    # The events themselves, in order: turning them into a delta is left to the writer's thread
    # (and to reads), off the event loop that serves requests.
    pending: list[Touch] | None = None  # not yet in a write
    inflight: list[Touch] | None = None  # being written
    last_message: float = 0.0  # trio clock
    writes: int = 0  # writes begun: tells a read whether one started meanwhile
    # sessions and days storage already counts (written by this actor, or read): not counted
    # again in the live profile, and days not sent again. Tuples, not sets: a visitor has a few
    # of each, and 100,000 visitors' two sets would weigh ~45 MB, their tuples ~10 MB.
    known_sessions: tuple[str, ...] = ()
    known_days: tuple[date, ...] = ()
    keys_loaded: bool = False  # known_* hold every session and day storage had when activated

    def receive(self, event: Event, now: float) -> bool:
        """Add ``event`` (this visitor's next) to the pending ones; True if it is the first
        pending since the last write began."""
        self.last_message = now
        pending = self.pending
        if pending is None:
            self.pending = [touch_of(event)]
            return True
        pending.append(touch_of(event))
        return False

    def begin_write(self) -> list[Touch]:
        """Move the pending events in flight and return them."""
        assert self.pending is not None and self.inflight is None
        self.inflight, self.pending = self.pending, None
        self.writes += 1
        return self.inflight

    def resume(self) -> None:
        """After a crash cut a write short: put the events in flight back before the pending
        ones (the write may have committed; then they count twice — see the module docstring)."""
        if self.inflight is not None:
            self.pending = self.inflight + (self.pending or [])
            self.inflight = None

    def written(self, delta: ProfileDelta, stored: ProfileState | None) -> None:
        """The events in flight committed as ``delta``; ``stored`` is the row storage returned,
        or None when it returned none: the row is then read again when someone asks."""
        assert self.inflight is not None
        self.known(delta.sessions, delta.active_days)
        self.stored = stored
        self.inflight = None

    def unwritten(self) -> ProfileDelta | None:
        """What the events in flight and pending add, as one delta (None without any)."""
        if self.inflight is None and self.pending is None:
            return None
        return delta_from_events(self.user_fingerprint, (*(self.inflight or ()), *(self.pending or ())))

    def live(self) -> ProfileState:
        """The profile as of now: stored plus in flight plus pending. Sessions and days not yet
        known to storage count as new."""
        base = self.stored or ProfileState(user_fingerprint=self.user_fingerprint)
        delta = self.unwritten()
        if delta is None:
            return base.plus()
        live = base.plus(delta)
        live.total_sessions += len(delta.sessions.keys() - self.known_sessions)
        live.days_active += len(delta.active_days.difference(self.known_days))
        return live

    def known(self, sessions: Iterable[str], days: Iterable[date]) -> None:
        """Storage counts ``sessions`` and ``days`` (besides those already known)."""
        self.known_sessions = _with_new(self.known_sessions, sessions)
        self.known_days = _with_new(self.known_days, days)

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


@attrs.define(eq=False)
class ProfilesActor:
    """Router and writer of the visitors' profiles; see the module docstring.

    ``storage`` is this actor's own (writes never queue behind event writes); ``reader`` serves
    the insights and journey reads; ``scorer`` hears of every written profile; ``stop_writer``,
    when given, writes chunks beside ``storage`` while stopping (see ``write``).
    """

    storage: Storage
    inbox: trio.MemoryReceiveChannel[list[Event]]
    reader: Storage | None = None
    scorer: trio.MemorySendChannel[list[str]] | None = None
    stop_writer: Storage | None = None
    idle_timeout: float = 300.0
    max_active: int = 20_000
    flush_interval: float = 1.0
    max_write_share: float = 0.1
    max_touchpoints: int = 500
    max_unwritten_events: int = 500_000
    activity: Activity = attrs.Factory(Activity)
    stats: ProfileStats = attrs.Factory(ProfileStats)
    # least recently used first
    _active: collections.OrderedDict[str, VisitorActor] = attrs.field(init=False, factory=collections.OrderedDict)
    # passivated with a delta not yet written: kept until a write commits it
    _retiring: dict[str, VisitorActor] = attrs.field(init=False, factory=dict)
    _stopping: bool = attrs.field(init=False, default=False)
    _wake_writer: trio.CancelScope | None = attrs.field(init=False, default=None)
    _write_done: trio.Event = attrs.field(init=False, factory=trio.Event)
    _unwritten_events: int = attrs.field(init=False, default=0)  # handled, not yet in a write
    _unwritten_visitors: int = attrs.field(init=False, default=0)  # with pending events
    _seconds_per_visitor: float = attrs.field(init=False, default=0.0)  # what the last write cost
    # the latest explicit journey steps handled (event ids), for journey_step_number
    _handled_steps: collections.OrderedDict[str, None] = attrs.field(init=False, factory=collections.OrderedDict)
    _progress: trio.lowlevel.ParkingLot = attrs.field(init=False, factory=trio.lowlevel.ParkingLot)

    @property
    def active_count(self) -> int:
        return len(self._active)

    def stats_json(self) -> dict[str, int | float]:
        s = self.stats
        return {
            "active": len(self._active), "maxActive": self.max_active, "retiring": len(self._retiring),
            "activations": s.activations, "passivations": s.passivations, "writes": s.writes,
            "failedWrites": s.failed_writes, "profilesWritten": s.profiles_written,
            "lastWriteSeconds": round(s.last_write_seconds, 3), "lastWriteProfiles": s.last_write_profiles,
            "unwrittenEvents": self._unwritten_events, "maxUnwrittenEvents": self.max_unwritten_events,
        }

    def request_stop(self) -> None:
        """Write what is pending and return (the inbox usually closes first, when the batcher stops)."""
        self._stopping = True
        self._wake()

    # ------------------------------------------------------------------ reads

    def actor_of(self, user_fingerprint: str) -> VisitorActor | None:
        return self._active.get(user_fingerprint) or self._retiring.get(user_fingerprint)

    @property
    def reader_storage(self) -> Storage:
        return self.reader or self.storage

    async def insights(self, user_fingerprint: str, *, history: int, scoring: ScoringSettings,
                       now: datetime) -> dict[str, Any] | None:
        """The visitor's insights document (``domain.insights``): the live profile, scores
        computed now, and each model's latest ``history`` predictions; None for an unknown visitor."""
        profile = await self.live_profile(user_fingerprint)
        if profile is None:
            return None
        predictions = await self.reader_storage.recent_predictions(user_fingerprint, history)
        journeys = await self.live_journeys(user_fingerprint)  # behavior and journey come from the sessions
        return insights_document(profile, predictions, now, scoring, journeys=journeys,
                                 max_touchpoints=self.max_touchpoints)

    async def live_journeys(self, user_fingerprint: str) -> list[StoredJourney]:
        """The visitor's journeys as stored, with the touchpoints of events not yet written
        added (in time order; a session not yet stored appears with them)."""
        for _ in range(3):
            actor = self.actor_of(user_fingerprint)
            if actor is None:
                return await self.reader_storage.load_journeys(user_fingerprint)
            while actor.inflight is not None:  # stored or not: wait until it is known
                await self._write_done.wait()
            writes = actor.writes
            stored = await self.reader_storage.load_journeys(user_fingerprint)
            if actor.writes == writes and actor.inflight is None:
                pending = delta_from_events(user_fingerprint, actor.pending) if actor.pending else None
                return _with_pending(stored, pending, self.max_touchpoints)
        return await self.reader_storage.load_journeys(user_fingerprint)

    async def journey_step_number(self, user_fingerprint: str, event_id: str, *, timeout: float = 1.0) -> int:
        """How many explicit journey steps the visitor has once the stored step ``event_id`` is
        handled (waiting for it at most ``timeout`` seconds): that step's ordinal, unless another
        step of the visitor's was handled meanwhile."""
        with trio.move_on_after(timeout):
            while event_id not in self._handled_steps:
                await self._progress.park()
        profile = await self.live_profile(user_fingerprint)
        return 0 if profile is None else profile.event_counts.get(JOURNEY_STEP_TYPE, 0)

    async def live_profile(self, user_fingerprint: str) -> ProfileState | None:
        """The visitor's profile including every event this actor has handled, or None for a
        visitor storage does not know and no event of which was handled."""
        reader = self.reader_storage
        for _ in range(3):  # a write that begins while we read makes the read ambiguous: read again
            actor = self.actor_of(user_fingerprint)
            if actor is None:
                found = await reader.load_profiles([user_fingerprint])
                return found.get(user_fingerprint)
            if actor.stored is not None and actor.keys_loaded:
                return actor.live()
            while actor.inflight is not None:  # the row read must include the write, or not, surely
                await self._write_done.wait()
            if actor.stored is not None and actor.keys_loaded:
                return actor.live()
            writes = actor.writes
            found = await reader.load_profiles([user_fingerprint]) if actor.stored is None else {}
            keys = await reader.visitor_keys(user_fingerprint) if not actor.keys_loaded else None
            if actor.writes != writes or actor.inflight is not None:
                continue  # a write began meanwhile: what was read may or may not include it
            if actor.stored is None:
                actor.stored = found.get(user_fingerprint) or ProfileState(user_fingerprint=user_fingerprint)
            if keys is not None:
                actor.known(keys.sessions, keys.days)
                actor.keys_loaded = True
            return actor.live()
        actor = self.actor_of(user_fingerprint)
        return None if actor is None else actor.live()

    # ------------------------------------------------------------------ the tasks

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        for actor in (*self._active.values(), *self._retiring.values()):
            if actor.inflight is not None:  # a write cut short by a crash: its events go into the next one
                self._unwritten_events += len(actor.inflight)
                if actor.pending is None:
                    self._unwritten_visitors += 1
                actor.resume()
        await self.storage.open()  # its own connections: profile writes never queue behind events
        for extra in self._extra_storages():
            await extra.open()
        try:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(self._write_periodically)
                task_status.started()
                await self._route()
                self._stopping = True
                self._wake()
            while await self.write():  # whatever was routed after the writer's last write
                pass
        finally:
            unwritten = sum(a.dirty for a in (*self._active.values(), *self._retiring.values()))
            if unwritten and self._stopping:
                logger.error("stopped before %d visitor profile(s) were written: their latest deltas are not in "
                             "user_behavior_profiles (the events are stored)", unwritten)
            await close_storages(self.storage, *self._extra_storages())

    def _extra_storages(self) -> list[Storage]:
        return [s for s in (self.reader, self.stop_writer) if s is not None]

    async def _route(self) -> None:
        next_idle_check = trio.current_time() + min(self.idle_timeout, 1.0)
        while not self._stopping:
            events = None
            with trio.move_on_at(next_idle_check):  # only the wait: handling must never be cut short
                try:
                    events = await self.inbox.receive()
                except trio.EndOfChannel:
                    return
            if events is not None:
                await self._handle_in_slices(events)
            if trio.current_time() >= next_idle_check:
                self._passivate_idle()
                next_idle_check = trio.current_time() + min(self.idle_timeout, 1.0)
        while True:  # asked to stop: what the batcher already handed over still counts
            try:
                self._handle(self.inbox.receive_nowait())
            except (trio.WouldBlock, trio.EndOfChannel):
                return

    def _handle(self, events: list[Event]) -> None:
        """Hand ``events`` (one stored batch, in order) to their visitors' actors."""
        self._apply(events)
        self._handled(events)

    def _handled(self, events: list[Event]) -> None:
        self.activity.record(len(events))
        if self._progress.statistics().tasks_waiting:
            self._progress.unpark_all()

    async def _handle_in_slices(self, events: list[Event]) -> None:
        """As :meth:`_handle`, yielding to the event loop every ``SLICE_EVENTS`` events: a
        2,000-event batch handled in one step would hold every request for ~10 ms. Slices are
        handled in order, so each visitor's events stay in order."""
        for start in range(0, len(events), SLICE_EVENTS):
            if start:
                await trio.lowlevel.checkpoint()
            self._apply(events[start : start + SLICE_EVENTS])
        self._handled(events)

    def _apply(self, events: list[Event]) -> None:
        # One pass, event by event (the hot path of the service: ~2 µs per event): under many
        # visitors most have one event per batch, so grouping by visitor first costs more than it saves.
        now = trio.current_time()
        active = self._active
        retiring = self._retiring
        new_visitors = 0
        for event in events:
            fp = event.user_fingerprint
            actor = active.get(fp)
            if actor is not None:
                active.move_to_end(fp)  # most recently used
            else:
                actor = retiring.pop(fp, None)
                if actor is None:
                    actor = VisitorActor(fp)
                    self.stats.activations += 1
                active[fp] = actor
            if actor.receive(event, now):
                new_visitors += 1
            if event.event_type == JOURNEY_STEP_TYPE:
                self._note_step(event.event_id)
        self._unwritten_visitors += new_visitors
        self._unwritten_events += len(events)
        while len(active) > self.max_active:
            fp, actor = active.popitem(last=False)
            self._passivate(fp, actor)
        if self._unwritten_events > self.max_unwritten_events:
            self._wake()  # memory first: write now, whatever the pacing says

    def _note_step(self, event_id: str) -> None:
        steps = self._handled_steps
        steps[event_id] = None
        if len(steps) > HANDLED_STEPS_KEPT:
            steps.popitem(last=False)

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

    def _wake(self) -> None:
        if self._wake_writer is not None:
            self._wake_writer.cancel()

    async def _write_periodically(self) -> None:
        idle_since = trio.current_time()  # end of the last write
        next_check = idle_since + self.flush_interval
        while True:
            with trio.CancelScope(deadline=next_check) as self._wake_writer:
                await trio.sleep_forever()
            self._wake_writer = None
            now = trio.current_time()
            next_check = now + self.flush_interval
            if not (self._stopping or self._unwritten_events > self.max_unwritten_events or self._write_due(now - idle_since)):
                continue
            stopping = self._stopping
            await self.write()
            if stopping:
                while await self.write():  # what arrived while the last write ran
                    pass
                return
            idle_since = trio.current_time()
            next_check = idle_since + self.flush_interval
            if self._stopping:  # asked while that write ran: the last writes follow at once
                next_check = idle_since

    @property
    def _urgent(self) -> bool:
        """Stopping, or over the memory bound: write as fast as storage allows."""
        return self._stopping or self._unwritten_events > self.max_unwritten_events

    def _write_due(self, idle: float) -> bool:
        """Pacing: a write is due when what it would cost (the visitors waiting, at what the last
        write cost per visitor) is at most ``max_write_share`` of the time it would end, counted
        from the last write's end: storage then spends at most that share on profile writes,
        whatever the load. Under a flood writes come rarely and coalesce many events each."""
        if self._unwritten_visitors == 0:
            return False
        cost = self._unwritten_visitors * self._seconds_per_visitor
        return cost <= self.max_write_share * (idle + cost)

    async def write(self) -> float:
        """Write every pending delta, ``WRITE_CHUNK`` visitors per transaction (each retried
        until it commits), hand the written visitors' fingerprints to the scorer; return the seconds it took
        (0 when nothing was pending). From a stop on, with a ``stop_writer``, two transactions
        are in flight at a time, one on each storage."""
        actors = [a for a in (*self._active.values(), *self._retiring.values()) if a.pending is not None]
        if not actors:
            return 0.0
        chunks = _chunks(actors, URGENT_WRITE_CHUNK if self._urgent else WRITE_CHUNK)
        took = 0.0  # time of the attempts that committed: waiting out an outage is not storage work
        for number, chunk in enumerate(chunks):
            if self._stopping and self.stop_writer is not None:  # from the stop on, mid-write too
                took += await self._write_on_each(itertools.chain([chunk], chunks), (self.storage, self.stop_writer))
                break
            if number and not self._urgent:
                # Spread the write: storage busy with it for a burst would hold up event commits
                # (and so acknowledgements) as long; in short chunks with rests between them it
                # stays within max_write_share all along.
                await trio.sleep(chunk_took * (1 / self.max_write_share - 1))
            chunk_took = await self._write_chunk(chunk, self.storage)
            took += chunk_took
        if len(actors) >= COSTED_WRITE:  # a smaller write measures its fixed overhead more than its rows
            self._seconds_per_visitor = took / len(actors)
        for fp in [fp for fp, actor in self._retiring.items() if not actor.dirty]:
            del self._retiring[fp]
        self.stats.writes += 1
        self.stats.last_write_seconds = took
        self.stats.last_write_profiles = len(actors)
        return took

    async def _write_on_each(self, chunks: Iterator[list[VisitorActor]], storages: tuple[Storage, ...]) -> float:
        """The chunks shared out among ``storages``, one transaction in flight on each. For the last
        write of a stop, whose time is mostly PostgreSQL's (~70 % of a core beside ~30 % of Python
        under a flood's backlog): two connections put it on two cores. Chunks hold distinct
        visitors, so the two transactions lock distinct profile and journey rows."""
        took = 0.0

        async def drain(storage: Storage) -> None:
            nonlocal took
            for chunk in chunks:  # one shared iterator: each takes the next chunk when it is free
                took += await self._write_chunk(chunk, storage)

        async with trio.open_nursery() as nursery:
            for storage in storages:
                nursery.start_soon(drain, storage)
        return took

    async def _write_chunk(self, actors: list[VisitorActor], storage: Storage) -> float:
        actors.sort(key=_fingerprint)  # row locks in one order, as the scorer takes them
        work = [(actor.user_fingerprint, actor.begin_write(), actor.known_days) for actor in actors]
        self._unwritten_events -= sum(len(touches) for _, touches, _ in work)
        self._unwritten_visitors -= len(work)
        deltas = await trio.to_thread.run_sync(_deltas_of, work)
        took = 0.0

        async def attempt() -> dict[str, ProfileState]:
            nonlocal took
            began = time.perf_counter()
            result = await storage.apply_profile_deltas(deltas, max_touchpoints=self.max_touchpoints,
                                                        return_rows=False)
            took = time.perf_counter() - began
            return result

        stored = await self._with_retry(attempt, "write profiles")
        for actor, delta in zip(actors, deltas, strict=True):
            actor.written(delta, stored.get(actor.user_fingerprint))  # no row: read again when asked
        done, self._write_done = self._write_done, trio.Event()
        done.set()
        self.stats.profiles_written += len(deltas)
        if self.scorer is not None:
            await self.scorer.send([actor.user_fingerprint for actor in actors])
        return took

    async def _with_retry(self, operation: Callable[[], Awaitable[T]], what: str) -> T:
        def failed(_: StorageError) -> None:
            self.stats.failed_writes += 1

        return await until_it_succeeds(operation, logger=logger, what=what, on_failure=failed)


def _with_pending(stored: list[StoredJourney], pending: ProfileDelta | None, max_touchpoints: int) -> list[StoredJourney]:
    if pending is None:
        return stored
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


def _deltas_of(work: list[tuple[str, list[Touch], tuple[date, ...]]]) -> list[ProfileDelta]:
    """Each visitor's events as a delta, without the days storage already has (runs in a worker
    thread: it touches only what it is given)."""
    deltas = []
    for fp, events, known_days in work:
        delta = delta_from_events(fp, events)
        delta.active_days.difference_update(known_days)
        deltas.append(delta)
    return deltas


def _chunks(actors: list[VisitorActor], visitors: int) -> Iterator[list[VisitorActor]]:
    """``actors`` in order, in chunks of at most ``visitors`` actors and at most ``CHUNK_EVENTS``
    pending events (a visitor with more makes a chunk of its own)."""
    chunk: list[VisitorActor] = []
    events = 0
    for actor in actors:
        pending = len(actor.pending or ())
        if chunk and (len(chunk) == visitors or events + pending > CHUNK_EVENTS):
            yield chunk
            chunk, events = [], 0
        chunk.append(actor)
        events += pending
    if chunk:
        yield chunk


def _with_new(known: tuple[K, ...], items: Iterable[K]) -> tuple[K, ...]:
    new = tuple(item for item in items if item not in known)
    return known + new if new else known


def _fingerprint(actor: VisitorActor) -> str:
    return actor.user_fingerprint
