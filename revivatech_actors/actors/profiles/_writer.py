"""Writing profiles: chunks of whole partitions, each one transaction, retried until it commits.

Each transaction writes its partitions' visitors' deltas together with those partitions'
positions: derived state and the position it reflects never part, so a process that dies (even
by SIGKILL) loses nothing and counts nothing twice: the next owner replays the log from the
stored positions. A write whose reply was lost is recognised on retry (the partition's
``writes``); one refused because another instance took the partition (``LeaseLost``) leaves its
events to that owner. After each transaction the written visitors' fingerprints go on to the
scorer; each write also raises the written profiles' ``version``, so what a dead owner wrote and
did not score is found again.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator

import attrs
import trio

from ...domain.profiles import ProfileDelta, delta_from_events
from ...messages import PartitionsTaken
from ...storage import LeaseLost, Storage, StorageError
from .._retry import until_it_succeeds
from ._routing import Router, Work
from ._stats import ProfileStats

__all__ = ["CHUNK_EVENTS", "URGENT_WRITE_CHUNK", "WRITE_CHUNK", "ChunkWriter", "chunks"]

logger = logging.getLogger(__package__)  # the actor's one logger, whichever part speaks

#: Visitors per profile-write transaction (whole partitions: more when one partition has more),
#: with a rest after each: storage is never busy with profiles for long at a time, so event
#: commits are not held up. Not fewer: each transaction has a fixed cost (two thread hops, a
#: statement) (docs/performance.md).
WRITE_CHUNK = 500
#: Visitors per transaction when stopping or over ``max_unwritten_events``: no rests, fewer
#: transactions, done sooner.
URGENT_WRITE_CHUNK = 2000
#: Most events in one transaction, unless one partition has more: a chunk's deltas, touchpoints
#: and JSON exist all at once, and the allocator keeps what such a peak took (docs/performance.md).
CHUNK_EVENTS = 20_000


def chunks(by_partition: dict[int, tuple[int, int]], visitors: int) -> Iterator[list[int]]:
    """Whole partitions (in order), grouped into chunks of at most ``visitors`` pending actors
    and ``CHUNK_EVENTS`` pending events (as ``by_partition`` counts them), unless one partition
    alone has more."""
    chunk: list[int] = []
    size = events = 0
    for partition in sorted(by_partition):
        actors, pending = by_partition[partition]
        if chunk and (size + actors > visitors or events + pending > CHUNK_EVENTS):
            yield chunk
            chunk, size, events = [], 0, 0
        chunk.append(partition)
        size += actors
        events += pending
    if chunk:
        yield chunk


@attrs.define(eq=False)
class ChunkWriter:
    """Writes chunks of partitions taken from ``router``; ``applying`` is held while a chunk is
    taken, so a batch being applied and its position go into the same write."""

    router: Router
    stats: ProfileStats
    applying: trio.Lock
    scorer: trio.MemorySendChannel[list[str] | PartitionsTaken] | None

    async def write_chunk(
        self, chunk: list[int], storage: Storage, *, owner: str, max_touchpoints: int
    ) -> float:
        """Write ``chunk``'s partitions on ``storage`` for ``owner``: their positions and every
        pending event of theirs, taken together now (events applied after this are in later
        positions and later writes). Return the seconds the attempt that committed took (0
        when nothing was written)."""
        async with (
            self.applying
        ):  # not in the middle of a batch: its events and its mark go together
            taken = self.router.begin_write(chunk)  # some partitions may be lost by now
        if taken is None:
            return 0.0
        deltas = await trio.to_thread.run_sync(_deltas_of, taken.work) if taken.work else []
        took = 0.0

        async def attempt() -> None:
            nonlocal took
            began = time.perf_counter()
            await storage.apply_profile_deltas(
                deltas,
                max_touchpoints=max_touchpoints,
                return_rows=False,
                positions=taken.positions,
                owner=owner,
            )
            took = time.perf_counter() - began

        try:
            await until_it_succeeds(
                attempt,
                logger=logger,
                what="write profiles",
                on_failure=self._failed,
                give_up=(LeaseLost,),
            )
        except LeaseLost as exc:
            for partition in exc.partitions:
                self.router.lose(partition, "taken over by another instance before its write")
            self.router.write_refused(taken)
            return 0.0
        self.router.write_committed(taken, deltas)
        if self.scorer is not None and taken.actors:
            await self.scorer.send([actor.user_fingerprint for actor in taken.actors])
        return took

    async def write_on_each(
        self,
        chunks: Iterator[list[int]],
        storages: tuple[Storage, ...],
        *,
        owner: str,
        max_touchpoints: int,
    ) -> float:
        """The chunks shared out among ``storages``, one transaction in flight on each. For the
        last write of a stop, whose time is mostly PostgreSQL's: two connections put it on two
        cores. Chunks hold distinct partitions, so the two transactions lock distinct rows."""
        took = 0.0

        async def drain(storage: Storage) -> None:
            nonlocal took
            for chunk in chunks:  # one shared iterator: each takes the next chunk when it is free
                took += await self.write_chunk(
                    chunk, storage, owner=owner, max_touchpoints=max_touchpoints
                )

        async with trio.open_nursery() as nursery:
            for storage in storages:
                nursery.start_soon(drain, storage)
        return took

    def _failed(self, _: StorageError) -> None:
        self.stats.failed_writes += 1


def _deltas_of(work: list[Work]) -> list[ProfileDelta]:
    """Each visitor's events as a delta, without the days storage already has (runs in a worker
    thread: it touches only what it is given)."""
    deltas = []
    for fp, events, known_days in work:
        delta = delta_from_events(fp, events)
        delta.active_days.difference_update(known_days)
        deltas.append(delta)
    return deltas
