"""The batcher actor: group commit by availability.

While one transaction is in flight, submissions collect in the inbox; when it ends, the next
transaction takes everything waiting, up to ``max_events`` events (a submission larger than the
room left is split across batches). Batches therefore grow with load by themselves, and a lone
event is written at once. ``max_wait`` (default 0) adds an optional wait for fuller batches,
which costs throughput: under load, batches fill by themselves.

After a commit, every event's outcome (stored / duplicate / rejected) is filled into its
submission, whose request is then answered, and the stored events go on to the subscribers
(profiles and metrics). A failed flush is retried with capped exponential backoff, holding the
events: nothing admitted is dropped, and the ingest budget (released only after commit) makes the
web layer answer 503 once the held events fill it.

Held work lives on the actor object, not in the task, so a restarted batcher resumes it.
"""

from __future__ import annotations

import collections
import logging
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import TypeVar

import attrs
import trio

from ..logs import REQUEST_ID
from ..messages import STORED, DeadLetter, Event, Outcome, Status, StoredBatch, Submission
from ..prometheus import (
    BATCH_FLUSH_SECONDS,
    BATCH_SIZE,
    COMMIT_LAG_SECONDS,
    EVENTS_DUPLICATE,
    EVENTS_REJECTED,
    EVENTS_STORED,
)
from ..storage import Storage, StorageError
from ..supervisor import Activity
from ._retry import until_it_succeeds
from .ingest import EventBudget

__all__ = ["BatcherActor", "BatchStats"]

logger = logging.getLogger(__name__)

T = TypeVar("T")

#: How many stored-event lists may wait for a slow subscriber before the batcher waits for it.
SUBSCRIBER_BUFFER = 64
#: Request ids named on the log lines of one flush; a batch of more requests names these and a
#: count.
LOGGED_REQUEST_IDS = 10


def batch_request_ids(ids: list[str | None]) -> str | None:
    """The request ids of a batch's submissions for its log lines: the first
    :data:`LOGGED_REQUEST_IDS` distinct ones comma-separated, then ``+N more``; None if none."""
    distinct = list(dict.fromkeys(i for i in ids if i is not None))
    if not distinct:
        return None
    shown = ",".join(distinct[:LOGGED_REQUEST_IDS])
    rest = len(distinct) - LOGGED_REQUEST_IDS
    return f"{shown},+{rest} more" if rest > 0 else shown


@attrs.define
class BatchStats:
    """Counters for operators and the benchmark."""

    batches: int = 0
    events: int = 0
    stored: int = 0
    duplicates: int = 0
    rejected: int = 0
    last_batch_size: int = 0
    largest_batch: int = 0
    failed_flushes: int = 0
    last_flush_seconds: float = 0.0


@attrs.define(eq=False)
class _Chunk:
    """A submission (part of which may already be written) waiting in the batcher."""

    submission: Submission
    next_index: int = 0
    letters_written: bool = False

    @property
    def remaining(self) -> int:
        return len(self.submission.events) - self.next_index


@attrs.define(eq=False)
class BatcherActor:
    storage: Storage
    inbox: trio.MemoryReceiveChannel[Submission]
    budget: EventBudget
    max_events: int = 2000
    max_wait: float = 0.0
    activity: Activity = attrs.Factory(Activity)
    stats: BatchStats = attrs.Factory(BatchStats)
    _pending: collections.deque[_Chunk] = attrs.field(init=False, factory=collections.deque)
    _pending_events: int = attrs.field(init=False, default=0)
    # ids sent in a flush whose commit was not confirmed (see _claim_own_writes)
    _maybe_stored: set[str] = attrs.field(init=False, factory=set)
    _subscribers: list[trio.MemorySendChannel[StoredBatch]] = attrs.field(init=False, factory=list)
    _stopping: bool = attrs.field(init=False, default=False)
    _idle_scope: trio.CancelScope | None = attrs.field(init=False, default=None)

    def subscribe(self, buffer: int = SUBSCRIBER_BUFFER) -> trio.MemoryReceiveChannel[StoredBatch]:
        """A channel that receives, after each commit, the events that commit stored (never
        duplicates or rejected ones). A subscriber that falls ``buffer`` lists behind slows the
        batcher down rather than losing events. Subscribe before the batcher runs."""
        send, receive = trio.open_memory_channel(buffer)
        self._subscribers.append(send)
        return receive

    @property
    def held_events(self) -> int:
        """Events received and not yet committed."""
        return self._pending_events

    def oldest_held(self) -> datetime | None:
        """When the oldest submission this batcher holds (taken from its inbox, not committed)
        was received; None when it holds none."""
        return self._pending[0].submission.received_at if self._pending else None

    def request_stop(self) -> None:
        """Finish: write everything already received, then return (the inbox is usually closed
        by ingest first; this also ends a batcher that waits on an idle inbox)."""
        self._stopping = True
        if self._idle_scope is not None:
            self._idle_scope.cancel()

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        task_status.started()
        try:
            await self._run()
        finally:
            queued = self.inbox.statistics().current_buffer_used
            if self._pending_events or queued:
                # Cancelled (a shutdown deadline) while holding events: say so, loudly. Durable
                # requests for them were never answered; accepted (202) ones are lost.
                logger.error(
                    "stopped with %d event(s) and %d queued submission(s) not written to storage",
                    self._pending_events,
                    queued,
                )

    async def _run(self) -> None:
        closed = False
        while True:
            if not self._pending:
                closed = self._drain() or closed
                if not self._pending:
                    if closed or self._stopping:
                        break
                    with trio.CancelScope() as self._idle_scope:
                        try:
                            self._add(await self.inbox.receive())
                        except trio.EndOfChannel:
                            closed = True
                    self._idle_scope = None
                    if not self._pending:
                        continue
            closed = self._drain() or closed
            if (
                self.max_wait > 0
                and self._pending_events < self.max_events
                and not (closed or self._stopping)
            ):
                closed = await self._wait_for_more() or closed
            await self._flush_one_batch()
        for subscriber in self._subscribers:
            await subscriber.aclose()

    def _add(self, submission: Submission) -> None:
        self._pending.append(_Chunk(submission))
        self._pending_events += len(submission.events)

    def _drain(self) -> bool:
        """Take what waits in the inbox without waiting, until a batch is full. True at end of
        input."""
        while self._pending_events < self.max_events:
            try:
                self._add(self.inbox.receive_nowait())
            except trio.WouldBlock:
                return False
            except trio.EndOfChannel:
                return True
        return False

    async def _wait_for_more(self) -> bool:
        with trio.move_on_after(self.max_wait):
            while self._pending_events < self.max_events:
                try:
                    self._add(await self.inbox.receive())
                except trio.EndOfChannel:
                    return True
        return False

    def _take_batch(self) -> tuple[list[tuple[_Chunk, int, int]], list[Event], list[DeadLetter]]:
        """The next batch: up to ``max_events`` events from the oldest chunks, plus the dead
        letters of every chunk it touches for the first time."""
        parts: list[tuple[_Chunk, int, int]] = []
        events: list[Event] = []
        letters: list[DeadLetter] = []
        for chunk in self._pending:
            room = self.max_events - len(events)
            if room <= 0:
                break
            start = chunk.next_index
            end = start + min(room, chunk.remaining)
            parts.append((chunk, start, end))
            events.extend(chunk.submission.events[start:end])
            if not chunk.letters_written:
                letters.extend(chunk.submission.dead_letters)
        return parts, events, letters

    async def _flush_one_batch(self) -> None:
        parts, events, letters = self._take_batch()
        # What is logged while this batch is written (a failed flush, rows the database refused)
        # names the requests it holds.
        request_ids = REQUEST_ID.set(
            batch_request_ids([chunk.submission.request_id for chunk, _, _ in parts])
        )
        try:
            await self._flush(parts, events, letters)
        finally:
            REQUEST_ID.reset(request_ids)

    async def _flush(
        self, parts: list[tuple[_Chunk, int, int]], events: list[Event], letters: list[DeadLetter]
    ) -> None:
        started = time.perf_counter()
        committed = await self._with_retry(
            lambda: self.storage.commit_batch(events, letters), events
        )
        outcomes = committed.outcomes
        # after a failed attempt, some events may have been stored by it, in another transaction
        log_txn = None if self._maybe_stored else committed.log_txn
        if self._maybe_stored:
            await self._claim_own_writes(events, outcomes)
        seconds = time.perf_counter() - started
        stored: list[Event] = []
        position = 0
        for chunk, start, end in parts:
            submission = chunk.submission
            for index in range(start, end):
                outcome = outcomes[position]
                position += 1
                if outcome.status is Status.STORED:
                    stored.append(submission.events[index])
                submission.resolve(index, outcome)
            if not chunk.letters_written:
                chunk.letters_written = True
                if submission.dead_letters:
                    submission.dead_letters_stored()
            chunk.next_index = end
            self._pending_events -= end - start
            if chunk.remaining == 0:
                self._pending.popleft()  # parts are always taken from the left, in order
                self.budget.release(submission.size)
        self._maybe_stored.clear()
        self._record(events, outcomes, seconds)
        self.activity.record(len(events))
        if stored:
            batch = StoredBatch(stored, log_txn)
            for subscriber in self._subscribers:
                try:
                    # No checkpoint while there is room (the usual case): the next batch is
                    # taken at once, not after every other runnable task had its turn.
                    subscriber.send_nowait(batch)
                except trio.WouldBlock:
                    await subscriber.send(batch)

    async def _claim_own_writes(self, events: list[Event], outcomes: list[Outcome]) -> None:
        """After a flush whose earlier attempt failed without knowing whether it committed:
        a DUPLICATE may be our own write. It is, exactly when the stored row was received at
        the same instant as this event (one request stamps ``received_at``; a client's replay
        is a later request). Only the first copy of an id in the batch can be ours."""
        first: dict[str, int] = {}
        for position, event in enumerate(events):
            first.setdefault(event.event_id, position)
        first = {
            event_id: position
            for event_id, position in first.items()
            if outcomes[position].status is Status.DUPLICATE and event_id in self._maybe_stored
        }
        if first:
            received = await self._with_retry(
                lambda: self.storage.received_times(list(first)), events
            )
            for event_id, position in first.items():
                if received.get(event_id) == events[position].received_at:
                    outcomes[position] = STORED
        self._maybe_stored.clear()

    async def _with_retry(self, operation: Callable[[], Awaitable[T]], events: list[Event]) -> T:
        """``operation()`` until it succeeds. After a failure, ``events`` may or may not have
        been committed: remember them as maybe stored."""

        def failed(_: StorageError) -> None:
            self.stats.failed_flushes += 1
            self._maybe_stored.update(event.event_id for event in events)

        what = f"flush of {len(events)} event(s) (holding {self._pending_events})"
        return await until_it_succeeds(operation, logger=logger, what=what, on_failure=failed)

    def _record(self, events: list[Event], outcomes: list[Outcome], seconds: float) -> None:
        stats = self.stats
        stats.batches += 1
        stats.events += len(events)
        stats.last_batch_size = len(events)
        stats.largest_batch = max(stats.largest_batch, len(events))
        stats.last_flush_seconds = seconds
        stored = duplicates = rejected = 0
        for outcome in outcomes:
            if outcome.status is Status.STORED:
                stored += 1
            elif outcome.status is Status.DUPLICATE:
                duplicates += 1
            else:
                rejected += 1
        stats.stored += stored
        stats.duplicates += duplicates
        stats.rejected += rejected
        EVENTS_STORED.inc(stored)
        EVENTS_DUPLICATE.inc(duplicates)
        if rejected:
            EVENTS_REJECTED.labels("database").inc(rejected)
        if events:
            BATCH_SIZE.observe(len(events))
            BATCH_FLUSH_SECONDS.observe(seconds)
            # submissions are taken oldest first: the first event waited longest
            COMMIT_LAG_SECONDS.observe(
                max(0.0, (datetime.now(UTC) - events[0].received_at).total_seconds())
            )
