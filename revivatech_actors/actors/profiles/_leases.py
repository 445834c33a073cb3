"""Which partitions this process owns: lease rounds, and telling the scorer of partitions taken.

The visitors are split into ``profiles.partitions`` partitions
(``revivatech_actors.domain.partitions``); each has one owner among the running instances at a
time, held by a lease in the database (``Storage.lease_round``, renewed ``LEASE_ROUNDS_PER_TTL``
times per ``lease_ttl``). An instance takes its share of the partitions (all of them when it runs
alone), gives up what is beyond its share when others join, and takes over the partitions of one
that stopped renewing. Taking a partition raises its epoch, so a former owner's late write is
refused (``LeaseLost``), and starts its cursor from the partition's stored position.

Taking a partition also tells the scorer (``PartitionsTaken``): a dead owner may have written
profiles it did not score, and their raised ``version`` lets the scorer find them.
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Awaitable, Callable

import attrs
import trio

from ...domain.partitions import Cursor, target_share
from ...messages import PartitionsTaken
from ...storage import Storage, StorageError
from ._routing import Router
from ._stats import ProfileStats

__all__ = ["LEASE_ROUNDS_PER_TTL", "Leases"]

logger = logging.getLogger(__package__)  # the actor's one logger, whichever part speaks

#: Lease rounds per ``lease_ttl``: a lease survives two failed renewals in a row.
LEASE_ROUNDS_PER_TTL = 3


@attrs.define(eq=False)
class Leases:
    """This process's leases on its share of the partitions; see the module docstring.

    ``storage`` runs the lease rounds (never behind a long write); ``router`` holds the owned
    partitions' cursors; ``taken`` is called when a round took partitions: their events are to
    be read from the log."""

    storage: Storage
    router: Router
    stats: ProfileStats
    partitions: int
    taken: Callable[[], None]
    owners: int = 1  # live instances at the last lease round
    to_release: set[int] = attrs.Factory(set)
    # partitions taken, the scorer not yet told
    _taken_untold: set[int] = attrs.field(init=False, factory=set)
    _taken_news: trio.Event = attrs.field(init=False, factory=trio.Event)

    def reset(self) -> None:
        """Forget what the last run was to release or tell (it owns nothing any more)."""
        self.to_release.clear()
        self._taken_untold.clear()
        self._taken_news = trio.Event()

    def give_up(self, partition: int, why: str | None) -> bool:
        """Stop deriving ``partition`` and release its lease at the next round (if owned);
        ``why`` as for ``Router.lose``."""
        if self.router.lose(partition, why):
            self.to_release.add(partition)
            return True
        return False

    async def keep(self, lease_round: Callable[[], Awaitable[None]], ttl: float) -> None:
        """Run ``lease_round`` ``LEASE_ROUNDS_PER_TTL`` times per ``ttl``, for ever; failures
        are logged, and the leases expire if they last."""
        failures = 0
        while True:
            await trio.sleep(ttl / LEASE_ROUNDS_PER_TTL)
            try:
                await lease_round()
                failures = 0
            except StorageError as exc:
                failures += 1
                if failures == 1 or failures % 20 == 0:
                    logger.error(
                        "renewing the partition leases failed (%d in a row): %s", failures, exc
                    )

    async def round(self, owner: str, *, ttl: float, claim: bool) -> None:
        """Renew ``owner``'s leases, give up what is beyond this instance's share, take what
        is free (unless not ``claim``)."""
        router = self.router
        share = target_share(self.partitions, self.owners)
        if len(router.cursors) > share:  # others joined: the highest partitions go to them
            given = [p for p in sorted(router.cursors)[share:] if self.give_up(p, None)]
            _log_lost(given, "given up to other instances", self.partitions, self.owners)
        release = sorted(self.to_release)
        result = await self.storage.lease_round(
            owner, partitions=self.partitions, ttl=ttl, release=release, claim=claim
        )
        self.to_release.difference_update(release)
        self.owners = result.owners
        taken_over = []
        for partition, cursor in list(router.cursors.items()):
            if result.owned.get(partition) != cursor.epoch and router.lose(partition, None):
                taken_over.append(partition)
        _log_lost(taken_over, "taken over by other instances", self.partitions, result.owners)
        claimed = {new.partition for new in result.claimed}
        for new in result.claimed:
            router.cursors[new.partition] = Cursor(
                new.partition, new.horizon, set(new.applied), epoch=new.epoch, writes=new.writes
            )
        self.to_release.update(
            p for p in result.owned if p not in router.cursors and p not in claimed
        )
        if claimed:
            self._taken_untold.update(claimed)
            self._taken_news.set()
            self.stats.partitions_taken += len(claimed)
            logger.info(
                "took %d partition(s) of %d (%d instance(s) alive): %s",
                len(claimed),
                self.partitions,
                result.owners,
                _ranges(sorted(claimed)),
            )
            self.taken()

    async def tell_scorer(
        self, scorer: trio.MemorySendChannel[list[str] | PartitionsTaken]
    ) -> None:
        """Tell ``scorer`` of each partition taken, for ever (apart from the lease rounds, which
        must not wait for the scorer's inbox)."""
        while True:
            await self._taken_news.wait()
            self._taken_news = trio.Event()
            taken = frozenset(self._taken_untold)
            self._taken_untold.clear()
            await scorer.send(PartitionsTaken(taken, self.partitions))


def _ranges(numbers: list[int]) -> str:
    """``[0, 1, 2, 5]`` as ``0-2, 5``."""
    parts = []
    for _, group in itertools.groupby(enumerate(numbers), lambda pair: pair[1] - pair[0]):
        run = [n for _, n in group]
        parts.append(str(run[0]) if len(run) == 1 else f"{run[0]}-{run[-1]}")
    return ", ".join(parts)


def _log_lost(partitions: list[int], why: str, of: int, owners: int) -> None:
    """One line for the partitions lost in one lease round (none: no line)."""
    if partitions:
        logger.info(
            "%d partition(s) of %d %s (%d instance(s) alive): %s",
            len(partitions),
            of,
            why,
            owners,
            _ranges(partitions),
        )
