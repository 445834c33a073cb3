"""Rows the database refuses: a batch is bisected until they are isolated, and each refused
event is kept as a dead letter (source ``database``) instead of sinking its batch.

``write_bisecting`` runs in the writer's worker thread through the engine's blocking hooks
(``EventStore``); the rest are pure helpers.
"""

from __future__ import annotations

import contextlib
import json
import logging
import uuid
from collections.abc import Iterable, Sequence
from typing import Any, ClassVar, Protocol

import attrs

from ..domain.validation import truncate_payload
from ..messages import DUPLICATE, STORED, DeadLetter, Event, Outcome, Status
from ._messages import first_line

__all__ = [
    "DEAD_LETTER_PAYLOAD_LIMIT",
    "EventStore",
    "event_as_json",
    "outcomes_of",
    "printable",
    "refused_event_letter",
    "write_bisecting",
]

logger = logging.getLogger(__name__)

_REFUSED_LETTER_NAMESPACE = uuid.UUID("0b6f3c1e-5f7a-4c38-9d0e-7f2a4b1c9e55")

#: Longest payload kept for one dead letter, in characters.
DEAD_LETTER_PAYLOAD_LIMIT = 8192


class EventStore(Protocol):
    """The engine hooks ``write_bisecting`` uses (see ``EventsStorage``)."""

    _row_errors: ClassVar[tuple[type[Exception], ...]]

    def _where(self) -> str: ...
    def _transaction(self, conn: Any) -> contextlib.AbstractContextManager[None]: ...
    def _store_in_one_statement(
        self, conn: Any, events: Sequence[Event]
    ) -> tuple[set[str], int] | None: ...
    def _store_events(self, conn: Any, events: Sequence[Event]) -> set[str]: ...
    def _log_txn(self, conn: Any) -> int: ...
    def _insert_dead_letters(self, conn: Any, letters: Sequence[DeadLetter]) -> None: ...


def outcomes_of(
    events: Sequence[Event], indices: Iterable[int], inserted: set[str]
) -> list[Outcome]:
    """The outcome of each of ``events[i]`` for ``i`` in ``indices``, given the ids a store
    inserted: STORED for the first of them with an inserted id, DUPLICATE for the rest (stored
    before, or repeated within the batch)."""
    outcomes = []
    first: set[str] = set()
    for i in indices:
        event_id = events[i].event_id
        if event_id in inserted and event_id not in first:
            first.add(event_id)
            outcomes.append(STORED)
        else:
            outcomes.append(DUPLICATE)
    return outcomes


def write_bisecting(
    store: EventStore, conn: Any, events: Sequence[Event], dead_letters: Sequence[DeadLetter]
) -> tuple[list[Outcome], int | None]:
    """Store ``events`` and ``dead_letters`` as ``Storage.commit_batch`` promises: one outcome
    per event, and the log transaction of the stored ones (None when none was, or when the
    batch took several transactions). What the database refuses is split off, half by half,
    until the refusing rows stand alone: those come back REJECTED and are kept as dead
    letters; connection errors are not caught here."""
    outcomes: list[Outcome | None] = [None] * len(events)
    refused: list[DeadLetter] = []
    txns: set[int] = set()  # the log transactions that stored events

    def attempt(indices: list[int], letters: Sequence[DeadLetter]) -> None:
        chunk = [events[i] for i in indices]
        try:
            single = store._store_in_one_statement(conn, chunk) if chunk and not letters else None
            one = contextlib.nullcontext() if single is not None else store._transaction(conn)
            with one:
                if single is not None:
                    inserted, txn = single
                elif chunk:
                    inserted = store._store_events(conn, chunk)
                    txn = store._log_txn(conn) if inserted else 0
                else:
                    inserted, txn = set(), 0
                if letters:
                    store._insert_dead_letters(conn, letters)
        except store._row_errors as exc:
            if letters and indices:
                attempt(indices, ())
                attempt([], letters)
            elif letters:
                _keep_refused_letters(store, conn, letters, exc)
            elif len(indices) > 1:
                middle = len(indices) // 2
                attempt(indices[:middle], ())
                attempt(indices[middle:], ())
            elif indices:
                index = indices[0]
                reason = f"refused by the database: {first_line(exc)}"
                outcomes[index] = Outcome(Status.REJECTED, reason)
                refused.append(refused_event_letter(events[index], reason))
            return
        if inserted:
            txns.add(txn)
        for i, outcome in zip(indices, outcomes_of(events, indices, inserted), strict=True):
            outcomes[i] = outcome

    attempt(list(range(len(events))), dead_letters)
    if refused:
        with store._transaction(conn):
            store._insert_dead_letters(conn, refused)
        logger.warning(
            "%s: %d event(s) refused by the database, kept as dead letters",
            store._where(),
            len(refused),
        )
    filled = [outcome for outcome in outcomes if outcome is not None]
    assert len(filled) == len(events)  # every index was attempted alone or within a chunk
    return filled, txns.pop() if len(txns) == 1 else None


def _keep_refused_letters(
    store: EventStore, conn: Any, letters: Sequence[DeadLetter], exc: Exception
) -> None:
    """Dead letters the database refused (client text it cannot hold, such as NUL in a field
    name): store them with every string as printable ASCII escapes instead. Should even that be
    refused, log them whole; they are never dropped without a word."""
    escaped = [
        attrs.evolve(
            letter,
            reasons=tuple(
                {printable(k): printable(v) for k, v in reason.items()} for reason in letter.reasons
            ),
            payload=printable(letter.payload),
        )
        for letter in letters
    ]
    try:
        with store._transaction(conn):
            store._insert_dead_letters(conn, escaped)
    except store._row_errors as again:
        logger.error(
            "%s: dead letters refused (%s, then %s); they were: %r",
            store._where(),
            first_line(exc),
            first_line(again),
            list(letters),
        )


def printable(text: str) -> str:
    """``text`` with control characters, non-ASCII characters and lone surrogates written as
    JSON escapes (``\\u0000``): storable by any database, readable by a person."""
    return json.dumps(text, ensure_ascii=True)[1:-1]


def event_as_json(event: Event) -> str:
    """An event as pure-ASCII JSON text: control characters and even lone surrogates (which the
    database may have refused) come out as escapes, so the dead letter itself is always
    storable. The stdlib encoder, not orjson: it can do ``ensure_ascii``, and this path is
    rare."""
    return json.dumps(
        {
            "event_id": event.event_id,
            "user_fingerprint": event.user_fingerprint,
            "session_id": event.session_id,
            "event_type": event.event_type,
            "timestamp": event.timestamp.isoformat(),
            "sent_at": event.sent_at.isoformat() if event.sent_at else None,
            "page_url": event.page_url,
            "referrer": event.referrer,
            "value": event.value,
            "properties": event.properties,
        },
        ensure_ascii=True,
        default=str,
    )


def refused_event_letter(event: Event, reason: str) -> DeadLetter:
    """The dead letter of an event the database refused, with ``reason``."""
    payload = truncate_payload(event_as_json(event), DEAD_LETTER_PAYLOAD_LIMIT)
    # The same letter however often this batch is retried; another request refused for the
    # same event_id (received at another instant) is a letter of its own.
    name = f"{event.event_id}@{event.received_at.isoformat()}"
    return DeadLetter(
        received_at=event.received_at,
        source="database",
        reasons=({"field": "", "message": reason},),
        payload=payload,
        letter_id=str(uuid.uuid5(_REFUSED_LETTER_NAMESPACE, name)),
    )
