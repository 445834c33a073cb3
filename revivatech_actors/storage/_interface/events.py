"""Events and dead letters: storing a batch idempotently, and reading receipt times back."""

from __future__ import annotations

import abc
import datetime
from collections.abc import Sequence
from typing import Any, ClassVar

import attrs

from ...messages import DeadLetter, Event, Outcome
from .._connections import WRITER, Lane, StorageConnections
from .._refused import outcomes_of, write_bisecting

__all__ = ["CommittedBatch", "EventsStorage"]


@attrs.frozen
class CommittedBatch:
    """What ``commit_batch`` did: one outcome per event, and the log transaction that stored the
    events reported STORED, or None when none was (or, rarely, when a batch the database partly
    refused took several transactions: its events then reach the profiles through the log)."""

    outcomes: list[Outcome]
    log_txn: int | None


class EventsStorage(StorageConnections):
    """``commit_batch``, ``write_batch``, ``received_times``, and the hooks an engine supplies
    for them."""

    #: Errors meaning "the database refuses these rows" (not "the database is unreachable"):
    #: ``write_batch`` bisects a batch that raises one of them.
    _row_errors: ClassVar[tuple[type[Exception], ...]]

    async def commit_batch(
        self, events: Sequence[Event], dead_letters: Sequence[DeadLetter] = ()
    ) -> CommittedBatch:
        """Store ``events`` and ``dead_letters``; return one outcome per event, in order, and the
        log transaction of the stored ones (``CommittedBatch``).

        Guarantees:
            * idempotent on ``event_id``: an event whose id is already stored (or appears earlier
              in the same batch) is not stored again and comes back ``DUPLICATE``;
            * every event reported ``STORED`` or ``DUPLICATE`` is committed, together with
              ``dead_letters`` (and nothing else: session rows come with the profile writes);
            * a row the database refuses (an encoding or constraint error) does not sink the
              batch: the batch is bisected until the refusing rows are isolated, those come back
              ``REJECTED`` with the database's reason and are committed as dead letters
              (source ``database``), and the rest is committed;
            * on StorageUnavailable nothing is known: the transaction may or may not have
              committed. Calling again with the same events is safe (see idempotency); ids the
              first attempt stored then come back ``DUPLICATE``.

        Raises:
            StorageUnavailable: the database cannot be reached or the storage is not open.
            StorageError: a failure that is not about particular rows.
        """
        if not events and not dead_letters:
            return CommittedBatch([], None)
        lane = self._open_lane(WRITER)
        if not dead_letters:
            stored = await self._store_on_loop(lane, events)
            if stored is not None:
                inserted, txn = stored
                return CommittedBatch(
                    outcomes_of(events, range(len(events)), inserted), txn if inserted else None
                )
        outcomes, log_txn = await self._call(
            lane, lambda conn: write_bisecting(self, conn, events, dead_letters), abandon=False
        )
        return CommittedBatch(outcomes, log_txn)

    async def write_batch(
        self, events: Sequence[Event], dead_letters: Sequence[DeadLetter] = ()
    ) -> list[Outcome]:
        """``commit_batch``'s outcomes alone."""
        return (await self.commit_batch(events, dead_letters)).outcomes

    async def received_times(self, event_ids: Sequence[str]) -> dict[str, datetime.datetime]:
        """``received_at`` of each of ``event_ids`` that is stored (absent ids are left out).

        Raises:
            StorageUnavailable: the database cannot be reached or the storage is not open.
        """
        if not event_ids:
            return {}
        lane = self._open_lane(WRITER)
        return await self._call(
            lane, lambda conn: self._received_times_blocking(conn, list(event_ids)), abandon=False
        )

    @abc.abstractmethod
    def _store_events(self, conn: Any, events: Sequence[Event]) -> set[str]:
        """Inside a transaction: insert ``events`` in order, skipping ids already stored (and
        repeats within ``events``), and return the ids actually inserted. Raise one of
        ``_row_errors`` when the database refuses a row. Nothing else is written with them:
        sessions, profiles and journeys come with the profile writes (``apply_profile_deltas``)."""

    @abc.abstractmethod
    def _log_txn(self, conn: Any) -> int:
        """Inside the transaction that just stored events (``_store_events``): its log
        transaction."""

    async def _store_on_loop(
        self, lane: Lane, events: Sequence[Event]
    ) -> tuple[set[str], int] | None:
        """Store ``events`` as ``_store_in_one_statement`` does, from the event loop itself
        (non-blocking I/O, no worker thread), and return the ids inserted with the log
        transaction; or None (the default)
        to leave the batch to the worker thread, which also isolates rows the database refuses.
        An engine that can, does so only while it holds ``lane`` (``_claim_lane``)."""
        return None

    def _store_in_one_statement(
        self, conn: Any, events: Sequence[Event]
    ) -> tuple[set[str], int] | None:
        """Outside any transaction: store ``events`` as ``_store_events`` does, in one atomic
        statement, and return the ids inserted with its log transaction; or None (the default)
        to have ``_store_events`` run inside a transaction instead. Called only for a batch
        without dead letters; one statement saves the round trips of BEGIN, COPY and COMMIT."""
        return None

    @abc.abstractmethod
    def _received_times_blocking(
        self, conn: Any, event_ids: list[str]
    ) -> dict[str, datetime.datetime]: ...

    @abc.abstractmethod
    def _insert_dead_letters(self, conn: Any, letters: Sequence[DeadLetter]) -> None:
        """Inside a transaction: append ``letters`` to ``rejected_events``."""
