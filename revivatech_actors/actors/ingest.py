"""The ingest actor: admits submissions from the web layer and hands them to the batcher.

Admission is where backpressure lives. Every submission reserves its weight (events plus dead
letters) in an :class:`EventBudget` of ``ingest.inbox`` events before it is queued, and gives it
back only once it is committed (or, for what ingest refuses, at once). When the budget stays full
for ``ingest.enqueue_timeout`` the submission is refused with :class:`Overloaded` (the web layer
answers 503 with Retry-After), so memory stays bounded however hard clients push and however long
the database is away.

For each submission, ingest turns the validated client events into :class:`Event` values: the
``event_id`` the client gave, or a fresh UUID; the client's timestamp corrected for clock skew
(``timestamp + (received_at - sent_at)``); ``received_at`` from the web layer.
"""

from __future__ import annotations

import collections
import contextlib
import logging
from collections.abc import Iterator

import attrs
import trio

from ..domain.validation import correct_clock_skew
from ..ids import new_event_ids
from ..messages import Event, Submission
from ..prometheus import EVENTS_RECEIVED, EVENTS_REJECTED
from ..supervisor import Activity

__all__ = ["EventBudget", "IngestActor", "Overloaded", "RecentIds"]

logger = logging.getLogger(__name__)

#: Client event ids remembered for answering "duplicate" in ``accepted`` mode without a database
#: round trip. About 100 bytes each; older repeats are still stored once (the database decides),
#: only the early answer cannot tell.
RECENT_IDS = 100_000


class Overloaded(Exception):
    """The service cannot take this submission now; the client should retry later."""


@attrs.define(eq=False)
class EventBudget:
    """A counting gate: at most ``capacity`` events admitted and not yet released.

    Waiters are served in arrival order (a large batch is not starved by a stream of small ones).
    """

    capacity: int
    used: int = 0
    _waiters: collections.deque[tuple[int, trio.Event]] = attrs.field(
        init=False, factory=collections.deque
    )

    def try_acquire(self, amount: int) -> bool:
        """Reserve ``amount`` events if there is room right now (and nobody waits before us)."""
        amount = min(
            amount, self.capacity
        )  # a submission larger than the budget waits for all of it
        if not self._waiters and self.used + amount <= self.capacity:
            self.used += amount
            return True
        return False

    async def acquire(self, amount: int) -> None:
        """Reserve ``amount`` events, waiting for room. Cancellation leaves nothing reserved."""
        if self.try_acquire(amount):
            return
        amount = min(amount, self.capacity)
        ready = trio.Event()
        entry = (amount, ready)
        self._waiters.append(entry)
        try:
            await ready.wait()
        except BaseException:
            if ready.is_set():  # granted just as we were cancelled: give it back
                self.release(amount)
            else:
                self._waiters.remove(entry)
                self._wake()
            raise

    def release(self, amount: int) -> None:
        self.used -= min(amount, self.capacity)
        self._wake()

    def _wake(self) -> None:
        while self._waiters and self.used + self._waiters[0][0] <= self.capacity:
            amount, ready = self._waiters.popleft()
            self.used += amount
            ready.set()


class RecentIds:
    """The last ``capacity`` client event ids seen, oldest forgotten first."""

    def __init__(self, capacity: int = RECENT_IDS) -> None:
        self._ids: collections.OrderedDict[str, None] = collections.OrderedDict()
        self._capacity = capacity

    def seen(self, event_id: str) -> bool:
        """True if ``event_id`` was seen before; remembers it either way."""
        if event_id in self._ids:
            self._ids.move_to_end(event_id)
            return True
        self._ids[event_id] = None
        if len(self._ids) > self._capacity:
            self._ids.popitem(last=False)
        return False


def _count_received(submission: Submission) -> None:
    """Count a submission's events as received, and its dead letters (the web layer's
    validation refusals) as rejected, whether or not it is admitted."""
    letters = len(submission.dead_letters)
    EVENTS_RECEIVED.inc(len(submission.incoming) + letters)
    if letters:
        EVENTS_REJECTED.labels("validation").inc(letters)


@attrs.define(eq=False)
class IngestActor:
    """Admits submissions (:meth:`submit`) and forwards them, converted, to ``downstream``.

    Admission and conversion run in the caller's task, as part of :meth:`submit`: a hop through
    an inbox of its own would cost every request one more scheduler round for no isolation
    gained — the conversion is pure and cannot block. The
    budget bounds what is admitted and not yet committed, and every submission weighs at least one
    event, so ``downstream`` (as large as the budget in the service) always has room.
    :meth:`run` is the actor's lifetime: it ends after :meth:`request_stop`, closing
    ``downstream`` so the batcher writes what it holds and stops.
    """

    downstream: trio.MemorySendChannel[Submission]
    budget: EventBudget
    enqueue_timeout: float = 0.5
    activity: Activity = attrs.Factory(Activity)
    recent_ids: RecentIds = attrs.Factory(RecentIds)
    _stopping: trio.Event = attrs.field(init=False, factory=trio.Event)

    async def submit(self, submission: Submission) -> None:
        """Admit ``submission`` (waiting at most ``enqueue_timeout`` for room in the budget),
        convert it and hand it to the batcher.

        Raises:
            Overloaded: no room in time, or the service is shutting down.
        """
        _count_received(submission)
        if self._stopping.is_set():
            raise Overloaded("the service is shutting down")
        if not self.budget.try_acquire(submission.size):  # the usual case needs no timer
            with trio.move_on_after(self.enqueue_timeout) as waiting:
                await self.budget.acquire(submission.size)
            if waiting.cancelled_caught:
                raise Overloaded(
                    f"ingest is full: no room for {submission.size} event(s) "
                    f"within {self.enqueue_timeout:g} s"
                )
        with self._giving_back_on_failure(submission):
            self._prepare(submission)
            try:
                self.downstream.send_nowait(submission)
            except trio.WouldBlock:  # only with a downstream smaller than the budget
                await self.downstream.send(submission)
        self._forwarded(submission)

    def offer(self, submission: Submission) -> bool:
        """Admit and forward ``submission`` only if there is room right now; False if there is
        not."""
        _count_received(submission)
        if self._stopping.is_set() or not self.budget.try_acquire(submission.size):
            return False
        try:
            with self._giving_back_on_failure(submission):
                self._prepare(submission)
                self.downstream.send_nowait(submission)
        except (Overloaded, trio.WouldBlock):
            return False
        self._forwarded(submission)
        return True

    @contextlib.contextmanager
    def _giving_back_on_failure(self, submission: Submission) -> Iterator[None]:
        """Around handing on an admitted ``submission``: whatever fails gives its budget back
        (once), and a closed downstream is Overloaded."""
        try:
            yield
        except (trio.ClosedResourceError, trio.BrokenResourceError):
            self.budget.release(submission.size)
            raise Overloaded("the service is shutting down") from None
        except BaseException:
            self.budget.release(submission.size)
            raise

    def _prepare(self, submission: Submission) -> None:
        """Convert the admitted ``submission``, unless the service began stopping meanwhile."""
        if self._stopping.is_set():  # stopped while this one waited for room
            raise Overloaded("the service is shutting down")
        submission.events = self._convert(submission)
        # Not needed any more: fewer live objects for the garbage collector to walk while the
        # events wait for their commit (its pauses are what health sees under a flood).
        submission.incoming = []

    def _forwarded(self, submission: Submission) -> None:
        submission.queued.set()
        self.activity.record(len(submission.events))
        logger.debug(
            "admitted %d event(s) and %d dead letter(s)",
            len(submission.events),
            len(submission.dead_letters),
        )

    def request_stop(self) -> None:
        """Refuse new submissions; :meth:`run` then closes the way to the batcher."""
        self._stopping.set()

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        task_status.started()
        await self._stopping.wait()
        # Stopped: the batcher finishes what it holds and stops when it sees the end.
        await self.downstream.aclose()

    def _convert(self, submission: Submission) -> list[Event]:
        received_at = submission.received_at
        user_agent, ip_address = submission.user_agent, submission.ip_address
        fresh_ids = iter(
            new_event_ids(sum(valid.event_id is None for valid in submission.incoming))
        )
        events = []
        for index, valid in enumerate(submission.incoming):
            if valid.event_id is None:
                event_id = next(fresh_ids)
            else:
                event_id = valid.event_id
                if self.recent_ids.seen(event_id):
                    submission.seen_before.add(index)
            events.append(
                Event(
                    event_id=event_id,
                    user_fingerprint=valid.user_fingerprint,
                    session_id=valid.session_id,
                    event_type=valid.event_type,
                    timestamp=correct_clock_skew(valid.timestamp, valid.sent_at, received_at),
                    received_at=received_at,
                    sent_at=valid.sent_at,
                    page_url=valid.page_url,
                    referrer=valid.referrer,
                    value=valid.value,
                    properties=valid.properties,
                    client_id=valid.client_id,
                    details=valid.details,
                    user_agent=user_agent,
                    ip_address=ip_address,
                )
            )
        return events
