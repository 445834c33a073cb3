"""The models actor: keeps the backtest of the scores fresh (``GET /api/analytics/models``,
docs/scoring.md, "How the scores are checked").

The first look is ``first_delay`` (or ``interval``, if shorter) after the start: a restart's
replay and catch-up go first.
Then it reads when the newest stored backtest ran; once that is ``interval`` old (or there is
none), it runs one: ``run_backtest()``, which the service makes ``revivatech-actors evaluate
--record`` in a process of its own at a low priority, so that reading the whole history and
scoring it never takes the event loop's time nor the ingest path's connections. Instances and
workers share the stored report: whoever finds it old runs the next, a little later each (a
random tenth of ``interval`` at most), so they rarely overlap, and two that do store the same
figures. A backtest that fails is logged and tried again after ``retry_delay``.

The newest report also says which learned models score visitors (:attr:`ModelsActor.in_use`,
read by the scorer and the insights): the actor reads it at every look, at least every
``adopt_interval`` seconds, so every instance uses a new model within that time.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Awaitable, Callable, Mapping
from datetime import UTC, datetime
from typing import Any

import attrs
import trio

from ..domain.learned import NO_MODELS, LearnedModel, models_in_use
from ..domain.timefmt import iso_utc
from ..storage import Storage, StorageError
from ..supervisor import Activity
from .storage import close_storages

__all__ = ["BacktestFailed", "ModelsActor"]

logger = logging.getLogger(__name__)


class BacktestFailed(Exception):
    """A backtest run ended without storing a report; the message says why."""


@attrs.define(eq=False)
class ModelsActor:
    """See the module docstring. ``storage`` is its own (it reads when the newest backtest ran);
    ``now`` is the wall clock (tests pass another)."""

    storage: Storage
    run_backtest: Callable[[], Awaitable[None]]
    interval: float = 21600.0
    first_delay: float = 30.0
    retry_delay: float = 300.0
    adopt_interval: float = 60.0
    now: Callable[[], datetime] = lambda: datetime.now(UTC)
    jitter: Callable[[], float] = random.random
    activity: Activity = attrs.Factory(Activity)
    runs: int = attrs.field(init=False, default=0)
    failures: int = attrs.field(init=False, default=0)
    running: bool = attrs.field(init=False, default=False)
    last_run_at: float | None = attrs.field(init=False, default=None)  # wall clock of its start
    last_run_seconds: float = attrs.field(init=False, default=0.0)
    last_error: str | None = attrs.field(init=False, default=None)
    #: The learned models the newest report puts in use, by model type.
    in_use: Mapping[str, LearnedModel] = attrs.field(init=False, default=NO_MODELS)
    _adopted_at: datetime | None = attrs.field(init=False, default=None)  # that report's time

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        await self.storage.open()
        try:
            task_status.started()
            await trio.sleep(min(self.first_delay, self.interval))
            while True:
                await trio.sleep(min(await self._one_look(), self.adopt_interval))
        finally:
            await close_storages(self.storage)

    async def _one_look(self) -> float:
        """Run a backtest if the newest is due; the seconds until the next look."""
        try:
            latest = await self.storage.latest_evaluation()
        except StorageError as exc:
            logger.warning("cannot read when the scores were last backtested: %s", exc)
            return self.retry_delay
        if latest is not None:
            self._adopt(*latest)
        age = float("inf") if latest is None else (self.now() - latest[0]).total_seconds()
        if age < self.interval:
            return self.interval - age + self.jitter() * self.interval / 10
        self.running, self.last_run_at, started = True, time.time(), time.monotonic()
        try:
            await self.run_backtest()
        except (BacktestFailed, StorageError, OSError) as exc:
            self.failures += 1
            self.last_error = str(exc)
            logger.warning(
                "backtest of the scores failed (next try in %g s): %s", self.retry_delay, exc
            )
            return self.retry_delay
        finally:
            self.running = False
            self.last_run_seconds = time.monotonic() - started
        self.runs += 1
        self.last_error = None
        self.activity.record()
        logger.info("scores backtested in %.1f s", self.last_run_seconds)
        return 0.0  # look again at once: adopt what it concluded

    def _adopt(self, evaluated_at: datetime, report: dict[str, Any]) -> None:
        if evaluated_at == self._adopted_at:
            return
        try:
            in_use = models_in_use(report)
        except (KeyError, TypeError, ValueError) as exc:  # a report this version cannot read
            logger.warning("the models of the backtest of %s are not used: %r", evaluated_at, exc)
            in_use = NO_MODELS
        changed = {m: v.version for m, v in in_use.items()} != {
            m: v.version for m, v in self.in_use.items()
        }
        self.in_use, self._adopted_at = in_use, evaluated_at
        if changed:
            logger.info(
                "scoring with %s",
                ", ".join(f"{m} {v.version}" for m, v in in_use.items()) or "the fixed formulas",
            )

    def stats_json(self) -> dict[str, Any]:
        return {
            "interval": self.interval,
            "running": self.running,
            "runs": self.runs,
            "failures": self.failures,
            "lastRunAt": iso_utc(self.last_run_at),
            "lastRunSeconds": round(self.last_run_seconds, 3),
            "lastError": self.last_error,
            "inUse": {model: learned.version for model, learned in self.in_use.items()},
        }
