"""The messages that travel between actors. Frozen values, except the few reply slots a request
waits on (:class:`Submission`), which only the actor that owns the request's fate writes.

A request's way: web builds a :class:`Submission` of :class:`Event` values (and :class:`DeadLetter`
records for what failed validation) → ingest → batcher, which stores them in one transaction and
fills in each event's :class:`Outcome` → web answers → the stored events go on to subscribers.
"""

from __future__ import annotations

import enum
import uuid
from datetime import datetime
from typing import Any

import attrs
import orjson
import trio

from .domain.validation import EventDetails, ValidEvent
from .logs import current_request_id

__all__ = [
    "DUPLICATE",
    "STORED",
    "DeadLetter",
    "Event",
    "Outcome",
    "PartitionsTaken",
    "Status",
    "StoredBatch",
    "Submission",
]


@attrs.frozen(slots=True)
class Event:
    """A validated event. ``timestamp`` is the client's time corrected for clock skew (docs/api.md,
    "Fields"); ``event_id`` is the client's idempotency key, or one ingest assigned."""

    event_id: str
    user_fingerprint: str
    session_id: str
    event_type: str
    timestamp: datetime
    received_at: datetime
    sent_at: datetime | None = None
    page_url: str | None = None
    referrer: str | None = None
    value: float | None = None
    properties: dict[str, Any] = attrs.field(factory=dict)
    client_id: str | None = None  # the client's id as sent, when it is not event_id itself
    details: EventDetails | None = None
    user_agent: str | None = None  # of the request that brought the event
    ip_address: str | None = None  # of the client, as ingest.client_ip says to keep it

    @property
    def user_id(self) -> str | None:
        return None if self.details is None else self.details.user_id

    @property
    def device_type(self) -> str | None:
        return None if self.details is None else self.details.device_type


@attrs.frozen(slots=True)
class DeadLetter:
    """Something that could not be stored as an event, kept with its reasons in ``rejected_events``.

    ``source`` is ``"validation"`` (refused by the rules) or ``"database"`` (refused by the
    database when stored); ``payload`` is the offending input as text, already truncated.
    """

    received_at: datetime
    source: str
    reasons: tuple[dict[str, str], ...]
    payload: str
    #: Derived from the content (source, reasons, payload): a client that resends the same refused
    #: input, or a retried write after a lost commit reply, is kept once (its repeats counted).
    letter_id: str = attrs.field(
        default=attrs.Factory(
            lambda self: _letter_id(self.source, self.reasons, self.payload), takes_self=True
        )
    )


#: Namespace of dead letters' content-derived ids.
_LETTER_NAMESPACE = uuid.UUID("0b7f5a3e-9a7c-5d1e-8f0a-6c2b4d9e1f35")


def _letter_id(source: str, reasons: tuple[dict[str, str], ...], payload: str) -> str:
    return str(uuid.uuid5(_LETTER_NAMESPACE, orjson.dumps([source, reasons, payload]).decode()))


class Status(enum.Enum):
    STORED = "stored"
    DUPLICATE = "duplicate"
    REJECTED = "rejected"


@attrs.frozen(slots=True)
class Outcome:
    status: Status
    reason: str | None = None  # why the database refused it, for REJECTED


#: The two outcomes without a reason, shared: not one object built per stored event.
STORED = Outcome(Status.STORED)
DUPLICATE = Outcome(Status.DUPLICATE)


@attrs.define(eq=False, slots=True)
class Submission:
    """One request's events on their way to storage, and the slots its answer waits on.

    The web layer fills ``received_at``, ``incoming`` (validated client events) and
    ``dead_letters``; ingest turns ``incoming`` into ``events`` (ids assigned, clocks corrected)
    and sets ``queued``; the batcher fills ``outcomes[i]`` for ``events[i]`` after commit and sets
    ``done`` once every outcome is known and the dead letters are committed too.
    ``seen_before`` holds the indexes ingest recognised as recent repeats of an ``event_id``
    (what an answer in ``accepted`` mode reports as duplicates before anything is stored).
    """

    received_at: datetime
    incoming: list[ValidEvent]
    dead_letters: list[DeadLetter] = attrs.Factory(list)
    user_agent: str | None = None  # the request's User-Agent, kept with each event
    ip_address: str | None = None  # the client's address as ingest.client_ip keeps it, or None
    events: list[Event] = attrs.Factory(list)
    outcomes: list[Outcome | None] = attrs.field(init=False)
    seen_before: set[int] = attrs.Factory(set)
    failure: str | None = None  # set when the pipeline lost this submission to a crash
    #: The id of the request that made it (the actors log it with what they do for it).
    request_id: str | None = attrs.Factory(current_request_id)
    queued: trio.Event = attrs.Factory(trio.Event)
    done: trio.Event = attrs.Factory(trio.Event)
    _unresolved: int = attrs.field(init=False)

    #: What this submission weighs against the ingest budget: events plus dead letters.
    size: int = attrs.field(init=False)

    def __attrs_post_init__(self) -> None:
        self.outcomes = [None] * len(self.incoming)
        self.size = len(self.incoming) + len(self.dead_letters)
        # the dead letters count as one more thing to resolve: they commit with a batch
        self._unresolved = len(self.incoming) + (1 if self.dead_letters else 0)
        if self._unresolved == 0:
            self.done.set()

    def resolve(self, index: int, outcome: Outcome) -> None:
        """Record the outcome of ``events[index]`` (once); sets ``done`` with the last one."""
        if self.outcomes[index] is None:
            self.outcomes[index] = outcome
            self._resolved_one()

    def fail(self, reason: str) -> None:
        """Give up on this submission (an actor crashed holding it): its request answers 500."""
        self.failure = reason
        self.queued.set()
        self.done.set()

    def dead_letters_stored(self) -> None:
        self._resolved_one()

    def _resolved_one(self) -> None:
        self._unresolved -= 1
        if self._unresolved == 0:
            self.done.set()


@attrs.frozen(slots=True)
class StoredBatch:
    """Events one commit stored, in order, as the batcher hands them to its subscribers, with
    the log transaction that stored them (None when it took several: the profiles then take
    these events from the log)."""

    events: list[Event]
    log_txn: int | None


@attrs.frozen(slots=True)
class PartitionsTaken:
    """From the profiles actor to the scorer: this instance took ``partitions`` (of ``count``).
    Their previous owner may have written profiles and died before scoring them; the scorer
    finds those (``Storage.unscored_profiles``) and scores them."""

    partitions: frozenset[int]
    count: int
