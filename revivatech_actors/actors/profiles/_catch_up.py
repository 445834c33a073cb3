"""Reading the event log for what the owned partitions have not applied.

Events reach a partition's owner two ways: the fast path (this process's batcher hands over what
each commit stored, with the commit's log transaction) and the log itself, read every
``poll_interval`` (``Storage.read_log``): events stored by other instances, or before a restart or
a change of owner. Instances announce events stored for partitions owned elsewhere (on an engine
that has announcements), and their owners read the log at once rather than at their next poll.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import attrs
import trio

from ...storage import Storage, StorageError
from ...storage._records import LogPage
from ...supervisor import Activity
from ._routing import Router, position_of
from ._stats import ProfileStats

__all__ = ["ANNOUNCE_INTERVAL", "SLICE_EVENTS", "CatchUp", "announce", "listen"]

logger = logging.getLogger(__package__)  # the actor's one logger, whichever part speaks

#: Events handled between two yields to the event loop, from a batch or a page of the log.
SLICE_EVENTS = 500
#: Seconds between two announcements of events stored for partitions owned elsewhere: their
#: owners read the log then rather than at their next poll.
ANNOUNCE_INTERVAL = 0.25


@attrs.define(eq=False)
class CatchUp:
    """Applies the log's events that the owned partitions' cursors do not cover.

    ``reader`` reads the log; ``applying`` is held while a page is applied, so that a write
    never takes a partition's events and position in between; ``received`` is called after
    events went to visitor actors, ``replayed`` after a page with events was applied."""

    reader: Storage
    router: Router
    stats: ProfileStats
    activity: Activity
    applying: trio.Lock
    received: Callable[[], None]
    replayed: Callable[[], None]
    # Transactions the fast path brought whole for every partition owned since: a poll does not
    # read them again (emptied when a partition is taken, whose cursor they may not cover).
    delivered: set[int] = attrs.Factory(set)

    async def catch_up(self) -> None:
        """Read the log for what the owned partitions do not cover, and apply it, page by page
        (a failed read is logged and left to the next poll)."""
        cursors = self.router.cursors
        while cursors:
            epochs = {p: c.epoch for p, c in cursors.items()}
            positions = [position_of(c) for c in cursors.values()]
            low = min(c.horizon for c in positions)
            self.delivered = {txn for txn in self.delivered if txn >= low}
            try:
                page = await self.reader.read_log(
                    positions, self.router.partitions, skip=self.delivered
                )
            except StorageError as exc:
                logger.warning("reading the event log failed, will retry: %s", exc)
                return
            async with self.applying:
                await self._apply_page(page, epochs)
            if page.entries:
                self.stats.replayed_events += len(page.entries)
                self.router.replayed_unwritten += len(page.entries)
                self.activity.record(len(page.entries))
                self.replayed()
            if not page.more:
                return

    async def _apply_page(self, page: LogPage, epochs: dict[int, int]) -> None:
        """Apply a page of the log read for the cursors of ``epochs``, in slices (as a batch);
        then move those cursors past it."""
        router = self.router
        cursors = router.cursors
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
            router.receive(entry.user_fingerprint, entry.partition, entry.touch, now)
        self.received()
        for partition, txn in applied:
            cursors[partition].mark(txn)
        for partition, epoch in epochs.items():
            cursor = cursors.get(partition)
            if cursor is not None and cursor.epoch == epoch:
                cursor.advance(page.horizon, noted=bool(page.entries))


async def listen(listener: Storage, poll_interval: float, poll_soon: Callable[[], None]) -> None:
    """Call ``poll_soon`` as soon as another process announces events, for ever (polling stays
    the fallback)."""
    while True:
        try:
            # short waits: a stop waits for the one in progress (it holds a worker thread)
            if await listener.wait_for_log(min(poll_interval, 0.25)):
                poll_soon()
        except StorageError as exc:
            logger.warning("waiting for announcements of stored events failed, will retry: %s", exc)
            await trio.sleep(poll_interval)


async def announce(storage: Storage, router: Router) -> None:
    """Announce, at most every ``ANNOUNCE_INTERVAL``, that events were stored here for
    partitions owned elsewhere (``router.foreign``), for ever."""
    while True:
        await trio.sleep(ANNOUNCE_INTERVAL)
        if router.foreign:
            router.foreign = False
            try:
                await storage.announce_log()
            except StorageError as exc:
                # the owners read the log at their next poll anyway; lease rounds report outages
                logger.debug("announcing stored events failed: %s", exc)
