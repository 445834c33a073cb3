"""The profiles actor: a router of per-visitor virtual actors.

It receives the events each commit stored (from the batcher's subscriber channel) and hands each
visitor's events, in order, to that visitor's :class:`VisitorActor`. A visitor actor is
*activated* on its first message — its profile loaded from storage (one query for every visitor a
batch activates) — and *passivated* after ``profiles.idle_timeout`` without messages, or when more
than ``profiles.max_active`` are active (least recently used first). Every
``profiles.flush_interval`` the pending deltas of all visitors go to storage in one transaction
(commutative: counts added, times least/greatest), and each visitor takes back the figures
storage derives (sessions, session time, days active).

Why virtual actors are objects driven by one task and not a task each: a task per visitor costs a
channel hop and a scheduler wake-up per event, a fifth of a core at the ingest rates measured in
docs/performance.md, for no gain — a visitor's events arrive in order from one batch at a time.
Each visitor's messages are still handled one after another, in order, as by an actor.

What is guaranteed: a visitor's pending delta lives on this object, not in the task, so a crash
and restart of the actor loses nothing; a delta leaves memory only after its transaction
committed. A process that dies loses the deltas of at most the last ``flush_interval`` (the events
themselves are stored); a lost commit reply followed by a retry can add a delta twice.
"""

from __future__ import annotations

import collections
import logging
from collections.abc import Awaitable, Callable, Sequence
from datetime import date
from typing import TypeVar

import attrs
import trio

from ..domain.profiles import ProfileDelta, ProfileState, Rollups
from ..messages import Event
from ..storage import Storage, StorageError
from ..supervisor import Activity
from ._retry import until_it_succeeds

__all__ = ["ProfilesActor", "ProfileStats", "VisitorActor"]

logger = logging.getLogger(__name__)

T = TypeVar("T")


@attrs.define(eq=False)
class VisitorActor:
    """One visitor: the profile as of the last flush, and what its events added since."""

    state: ProfileState
    pending: ProfileDelta | None = None
    last_message: float = 0.0  # trio clock
    # days and sessions this actor already wrote: not sent again (they would only conflict)
    known_days: set[date] = attrs.Factory(set)
    known_sessions: set[str] = attrs.Factory(set)

    def receive(self, events: Sequence[Event], now: float) -> None:
        """Add this visitor's ``events`` (in order) to the pending delta."""
        if self.pending is None:
            self.pending = ProfileDelta(self.state.user_fingerprint)
        add = self.pending.add
        for event in events:
            add(event)
        self.last_message = now

    def current(self) -> ProfileState:
        """The profile as of now: the state plus what is pending (sessions and days active as
        counted at the last flush)."""
        if self.pending is None:
            return self.state
        live = attrs.evolve(self.state, event_counts=dict(self.state.event_counts))
        live.apply(self.pending)
        return live

    def unwritten(self) -> ProfileDelta:
        """The pending delta without the days and sessions already written."""
        assert self.pending is not None
        return attrs.evolve(
            self.pending,
            active_days=self.pending.active_days - self.known_days,
            sessions=self.pending.sessions - self.known_sessions,
        )

    def written(self, delta: ProfileDelta, rollups: Rollups | None) -> None:
        """``delta`` is committed: fold it into the state (one task: nothing was added while the
        write was in flight)."""
        self.state.apply(delta)
        if rollups is not None:
            self.state.set_rollups(rollups)
        self.known_days |= delta.active_days
        self.known_sessions |= delta.sessions
        self.pending = None


@attrs.define
class ProfileStats:
    activations: int = 0
    passivations: int = 0
    flushes: int = 0
    failed_flushes: int = 0
    profiles_written: int = 0


@attrs.define(eq=False)
class ProfilesActor:
    storage: Storage
    inbox: trio.MemoryReceiveChannel[list[Event]]
    idle_timeout: float = 300.0
    max_active: int = 20_000
    flush_interval: float = 1.0
    activity: Activity = attrs.Factory(Activity)
    stats: ProfileStats = attrs.Factory(ProfileStats)
    # least recently used first
    _active: collections.OrderedDict[str, VisitorActor] = attrs.field(init=False, factory=collections.OrderedDict)
    # passivated with a delta not yet written: kept until the next flush commits it
    _retiring: dict[str, VisitorActor] = attrs.field(init=False, factory=dict)
    _stopping: bool = attrs.field(init=False, default=False)
    _idle_scope: trio.CancelScope | None = attrs.field(init=False, default=None)

    @property
    def active_count(self) -> int:
        return len(self._active)

    def visitor(self, user_fingerprint: str) -> ProfileState | None:
        """The live profile of an active (or passivating) visitor, else None."""
        actor = self._active.get(user_fingerprint) or self._retiring.get(user_fingerprint)
        return None if actor is None else actor.current()

    def request_stop(self) -> None:
        """Write what is pending and return (the inbox usually closes first, when the batcher stops)."""
        self._stopping = True
        if self._idle_scope is not None:
            self._idle_scope.cancel()

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        await self.storage.open()  # its own connections: profile writes never queue behind events
        try:
            task_status.started()
            await self._run()
        finally:
            with trio.move_on_after(2) as scope:
                scope.shield = True
                await self.storage.close()

    async def _run(self) -> None:
        next_flush = trio.current_time() + self.flush_interval
        closed = False
        while not (closed or self._stopping):
            batches: list[list[Event]] = []
            with trio.CancelScope(deadline=next_flush) as self._idle_scope:  # wake up to flush
                try:
                    batches.append(await self.inbox.receive())
                except trio.EndOfChannel:
                    closed = True
            self._idle_scope = None
            while True:  # take whatever else waits, in order
                try:
                    batches.append(self.inbox.receive_nowait())
                except (trio.WouldBlock, trio.EndOfChannel):
                    break
            for events in batches:
                await self._handle(events)
            if trio.current_time() >= next_flush:
                await self.flush()
                self._passivate_idle()
                next_flush = trio.current_time() + self.flush_interval
        await self.flush()

    async def _handle(self, events: list[Event]) -> None:
        by_visitor: dict[str, list[Event]] = {}
        for event in events:
            by_visitor.setdefault(event.user_fingerprint, []).append(event)
        missing = [fp for fp in by_visitor if fp not in self._active and fp not in self._retiring]
        loaded = await self._with_retry(lambda: self.storage.load_profiles(missing), "load profiles") if missing else {}
        now = trio.current_time()
        for fp, visitor_events in by_visitor.items():
            actor = self._active.pop(fp, None) or self._retiring.pop(fp, None)
            if actor is None:
                actor = VisitorActor(loaded.get(fp) or ProfileState(user_fingerprint=fp))
                self.stats.activations += 1
            self._active[fp] = actor  # most recently used
            actor.receive(visitor_events, now)
        while len(self._active) > self.max_active:
            fp, actor = self._active.popitem(last=False)
            self._passivate(fp, actor)
        self.activity.record(len(events))

    def _passivate(self, fp: str, actor: VisitorActor) -> None:
        self.stats.passivations += 1
        if actor.pending is not None:
            self._retiring[fp] = actor

    def _passivate_idle(self) -> None:
        horizon = trio.current_time() - self.idle_timeout
        while self._active:
            fp, actor = next(iter(self._active.items()))
            if actor.last_message > horizon:
                break  # the rest were used more recently
            del self._active[fp]
            self._passivate(fp, actor)

    async def flush(self) -> None:
        """Write every pending delta in one transaction, then forget what was passivated."""
        actors = [a for a in (*self._active.values(), *self._retiring.values()) if a.pending is not None]
        if not actors:
            return
        deltas = [actor.unwritten() for actor in actors]
        rollups = await self._with_retry(lambda: self.storage.apply_profile_deltas(deltas), "write profiles")
        for actor, delta in zip(actors, deltas, strict=True):
            actor.written(delta, rollups.get(delta.user_fingerprint))
        self._retiring.clear()
        self.stats.flushes += 1
        self.stats.profiles_written += len(deltas)

    async def _with_retry(self, operation: Callable[[], Awaitable[T]], what: str) -> T:
        def failed(_: StorageError) -> None:
            self.stats.failed_flushes += 1

        return await until_it_succeeds(operation, logger=logger, what=what, on_failure=failed)
