"""The scorer actor: scores written profiles and records the scores that moved.

It hears of every visitor the profiles actor wrote and keeps them waiting to be scored, oldest
first; their stored rows are read, ``LOAD_CHUNK`` at a time, when their turn comes (so a visitor
written many times while waiting is read once). Every ``interval`` it scores waiting
visitors (engagement, lead, churn risk, price sensitivity and the segment: ``domain.scoring``)
for at most ``max_share`` of the interval's time, and stores, in one transaction, a
``ml_predictions`` row for each score that moved at least ``scoring.record_threshold`` points
since the value last recorded, plus each visitor's segment and ``scored_at``. So a visitor gets at
most one row per model per write of its profile, in batches, never a row per event; under load
visitors wait longer (the backlog shows on the actors endpoint) instead of the scorer taking the
CPU that ingest needs. Insights compute scores on read, so they never wait for this actor.

Nothing written goes unscored, even across a crash: each profile write raises the profile's
``version`` in the transaction that records its log position, and a record stores the version it
scored. When the profiles actor takes partitions (at start, or from an instance that died), it
tells the scorer (``PartitionsTaken``), which queues their profiles written since their last
score before anything else.

Churn risk grows while a visitor stays away, with no event to trigger a rescore: when nothing
waits, the scorer asks storage for profiles last scored more than ``rescore_interval`` ago.
"""

from __future__ import annotations

import collections
import logging
import operator
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta

import attrs
import trio

from ..config import ScoringSettings
from ..domain.insights import score_record
from ..domain.learned import NO_MODELS, LearnedModel
from ..domain.profiles import ProfileState
from ..domain.scoring import ScoreRecord
from ..messages import PartitionsTaken
from ..storage import Storage, StorageError
from ..supervisor import Activity
from ._retry import until_it_succeeds
from .storage import close_storages

__all__ = ["ScorerActor", "ScorerStats"]

logger = logging.getLogger(__name__)

#: Longest stretch of scoring between two yields to the event loop, in seconds.
SLICE = 0.002
#: Seconds of scoring when stopping.
FINAL_BUDGET = 1.0
#: Waiting visitors whose rows are read in one query.
LOAD_CHUNK = 50
#: Idle profiles fetched per rescoring query.
RESCORE_BATCH = 1000


@attrs.define
class ScorerStats:
    scored: int = 0
    predictions: int = 0
    rescored_idle: int = 0
    unscored_taken: int = 0  # profiles of taken partitions written since their last score
    failed_writes: int = 0


@attrs.define(eq=False)
class ScorerActor:
    storage: Storage
    inbox: trio.MemoryReceiveChannel[list[str] | list[ProfileState] | PartitionsTaken]
    settings: ScoringSettings
    interval: float = 1.0
    max_share: float = 0.05
    rescore_interval: float = 3600.0
    #: told of each visitor whose scores were recorded (the live feed follows them)
    on_recorded: Callable[[ScoreRecord], None] | None = None
    #: the learned models in use, by model type (the models actor's)
    learned_models: Callable[[], Mapping[str, LearnedModel]] = lambda: NO_MODELS
    activity: Activity = attrs.Factory(Activity)
    stats: ScorerStats = attrs.Factory(ScorerStats)
    # visitor → its row when known (idle rescoring reads it), else None: read when its turn comes
    _waiting: collections.OrderedDict[str, ProfileState | None] = attrs.field(
        init=False, factory=collections.OrderedDict
    )
    _next_rescore: float = attrs.field(init=False, default=0.0)
    # partitions taken whose unscored profiles are not queued yet, and the partition count
    _taken: set[int] = attrs.field(init=False, factory=set)
    _partition_count: int = attrs.field(init=False, default=0)
    _stopping: bool = attrs.field(init=False, default=False)
    _sleep: trio.CancelScope | None = attrs.field(init=False, default=None)

    @property
    def backlog(self) -> int:
        """Visitors waiting to be scored."""
        return len(self._waiting)

    def stats_json(self) -> dict[str, int]:
        s = self.stats
        return {
            "waiting": len(self._waiting),
            "scored": s.scored,
            "predictions": s.predictions,
            "rescoredIdle": s.rescored_idle,
            "unscoredTaken": s.unscored_taken,
            "failedWrites": s.failed_writes,
        }

    def request_stop(self) -> None:
        """Score what fits in ``FINAL_BUDGET`` seconds, store it and return. Visitors still waiting
        keep ``version > scored_version``: whichever instance takes their partitions next scores
        them first."""
        self._stopping = True
        if self._sleep is not None:
            self._sleep.cancel()

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        await self.storage.open()
        try:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(self._receive)
                task_status.started()
                while not self._stopping:
                    with trio.CancelScope(
                        deadline=trio.current_time() + self.interval
                    ) as self._sleep:
                        await trio.sleep_forever()
                    self._sleep = None
                    await self.score_waiting(FINAL_BUDGET if self._stopping else None)
                if self._waiting:
                    logger.warning(
                        "stopping with %d visitor(s) not scored since their last profile write; "
                        "their partitions' next owner scores them",
                        len(self._waiting),
                    )
                nursery.cancel_scope.cancel()
        finally:
            await close_storages(self.storage)

    async def _receive(self) -> None:
        async for written in self.inbox:
            if isinstance(written, PartitionsTaken):
                self._taken.update(written.partitions)
                self._partition_count = written.count
                continue
            waiting = self._waiting
            for item in written:  # a written visitor's fingerprint, or its stored row
                if isinstance(item, str):
                    waiting[item] = (
                        None  # keeps its place in line; its row is read when its turn comes
                    )
                else:
                    waiting[item.user_fingerprint] = item
        self._stopping = True

    async def score_waiting(self, budget: float | None = None) -> int:
        """Score waiting visitors for at most ``budget`` seconds (default ``max_share`` of the
        interval), ``LOAD_CHUNK`` at a time: read their rows, score, store the results; return
        how many were scored. Small transactions keep storage from being busy with scores for
        long at a time (event commits would wait behind them)."""
        if self._taken and not self._stopping:
            await self._fetch_unscored()
        if not self._waiting and not self._stopping and trio.current_time() >= self._next_rescore:
            await self._fetch_idle()
        deadline = time.perf_counter() + (
            self.max_share * self.interval if budget is None else budget
        )
        now = datetime.now(UTC)
        waiting = self._waiting
        scored = 0
        while waiting and (time.perf_counter() < deadline or not scored):
            turn = [waiting.popitem(last=False) for _ in range(min(LOAD_CHUNK, len(waiting)))]
            unread = [fp for fp, state in turn if state is None]
            if unread:
                read = await self._read(unread)
                # put back read, if put back
                turn = [(fp, state or read.get(fp)) for fp, state in turn]
            records: list[ScoreRecord] = []
            learned = self.learned_models()
            next_yield = time.perf_counter() + SLICE
            for index, (_fp, state) in enumerate(turn):
                if state is not None:
                    records.append(score_record(state, now, self.settings, learned))
                clock = time.perf_counter()
                if clock >= deadline:
                    self._put_back(turn[index + 1 :])
                    break
                # let requests through: a cycle must not stall the event loop
                if clock >= next_yield:
                    await trio.lowlevel.checkpoint()
                    next_yield = time.perf_counter() + SLICE
            await self._record(records)
            scored += len(records)
        return scored

    async def _record(self, records: list[ScoreRecord]) -> None:
        if not records:
            return
        # row locks in one order, as the profile writes take them
        records.sort(key=operator.attrgetter("user_fingerprint"))
        await until_it_succeeds(
            lambda: self.storage.record_scores(records),
            logger=logger,
            what="record scores",
            on_failure=self._failed,
        )
        self.stats.scored += len(records)
        self.stats.predictions += sum(len(r.recorded) for r in records)
        self.activity.record(len(records))
        if self.on_recorded is not None:
            for record in records:
                if record.recorded:
                    self.on_recorded(record)

    async def _read(self, fingerprints: list[str]) -> dict[str, ProfileState]:
        return await until_it_succeeds(
            lambda: self.storage.load_profiles(fingerprints),
            logger=logger,
            what="read profiles to score",
            on_failure=self._failed,
        )

    def _put_back(self, rest: list[tuple[str, ProfileState | None]]) -> None:
        """Put visitors not reached back at the head of the line, in order (unless a newer write
        already queued them again)."""
        for fp, state in reversed(rest):
            if fp not in self._waiting:
                self._waiting[fp] = state
                self._waiting.move_to_end(fp, last=False)

    async def _fetch_unscored(self) -> None:
        taken, count = frozenset(self._taken), self._partition_count
        found = await until_it_succeeds(
            lambda: self.storage.unscored_profiles(taken, count),
            logger=logger,
            what="find profiles written since their last score",
            on_failure=self._failed,
        )
        self._taken -= taken
        for fp in reversed(found):  # ahead of the line: they have waited since before this process
            if fp not in self._waiting:
                self._waiting[fp] = None
                self._waiting.move_to_end(fp, last=False)
        self.stats.unscored_taken += len(found)
        if found:
            logger.info(
                "%d profile(s) of the %d partition(s) taken were written since their last score: "
                "scoring them first",
                len(found),
                len(taken),
            )

    async def _fetch_idle(self) -> None:
        before = datetime.now(UTC) - timedelta(seconds=self.rescore_interval)
        idle = await until_it_succeeds(
            lambda: self.storage.profiles_to_rescore(before, RESCORE_BATCH),
            logger=logger,
            what="find idle profiles",
            on_failure=self._failed,
        )
        for state in idle:
            self._waiting.setdefault(state.user_fingerprint, state)
        self.stats.rescored_idle += len(idle)
        if len(idle) < RESCORE_BATCH:  # all caught up: look again in a while
            self._next_rescore = trio.current_time() + min(self.rescore_interval, 60.0)

    def _failed(self, _: StorageError) -> None:
        self.stats.failed_writes += 1
