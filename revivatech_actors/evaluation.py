"""Backtests of the scores on the stored history: what ``revivatech-actors evaluate`` prints and
``GET /api/analytics/models`` serves (docs/scoring.md, "How the scores are checked").

A backtest reads every stored event once, in time order, rebuilds each visitor's profile as of
each cut-off (:mod:`.domain.backtest`), scores it with the fixed formulas of the
settings, and fits and judges a learned model against them (:mod:`.domain.learning`). It is
heavy (seconds for a hundred thousand visitors) and runs on a storage of its own; the service
runs it in a process of its own at a low priority (:mod:`.backtest_process`).
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import Any

import attrs

from .config import ScoringSettings
from .domain.backtest import HistoryEvent, SampleStream, cutoffs
from .domain.learning import CHECKED_MODELS, BacktestTally, ModelChoice, choose
from .domain.timefmt import iso_datetime
from .storage import Storage

__all__ = ["Evaluation", "WorkPacer", "evaluate_history"]


@attrs.frozen
class Evaluation:
    """One backtest's conclusions, per model type (:class:`.domain.learning.ModelChoice`)."""

    evaluated_at: datetime
    horizon_days: float
    cutoffs: tuple[datetime, ...]
    visitors: int
    samples: int
    seconds: float
    models: dict[str, ModelChoice]

    def to_json(self) -> dict[str, Any]:
        return {
            "evaluatedAt": iso_datetime(self.evaluated_at),
            "horizonDays": self.horizon_days,
            "cutoffs": [iso_datetime(c) for c in self.cutoffs],
            "visitors": self.visitors,
            "samples": self.samples,
            "seconds": round(self.seconds, 3),
            "models": {model: choice.to_json() for model, choice in self.models.items()},
        }


@attrs.define
class WorkPacer:
    """Keeps a loop's work to ``share`` of the wall time: :meth:`tick` between steps sleeps,
    once per ``slice_seconds`` of work, so that work / (work + sleep) = ``share``. Work is wall
    time, not CPU time, so what the loop waits for (the database's rows) counts as its own.

    On a machine whose cores the service uses, a backtest's work at any priority costs the
    ingest path latency (docs/performance.md); pacing bounds that cost to its share."""

    share: float
    slice_seconds: float = 0.05
    _since: float = attrs.field(factory=time.monotonic, init=False)

    def tick(self) -> None:
        worked = time.monotonic() - self._since
        if self.share < 1 and worked >= self.slice_seconds:
            time.sleep(worked * (1 - self.share) / self.share)
            self._since = time.monotonic()


async def evaluate_history(
    storage: Storage, settings: ScoringSettings, *, work_share: float = 1.0
) -> Evaluation:
    """Backtest the scores on everything ``storage`` holds, with ``settings``: at up to
    ``settings.backtest_cutoffs`` cut-offs, labels over ``settings.horizon_days``, a learned
    model fitted and judged against the fixed formula per model. Without enough history (less
    than two horizons) there are no cut-offs and no samples. With ``work_share`` below 1 the
    scan of the history (nearly all of the time) is paced to that share of the wall time
    (:class:`WorkPacer`); the fits are not."""
    started = time.monotonic()
    pacer = WorkPacer(work_share)
    evaluated_at = datetime.now(UTC)
    horizon = timedelta(days=settings.horizon_days)
    bounds = await storage.history_bounds()
    at = [] if bounds is None else cutoffs(*bounds, horizon, settings.backtest_cutoffs)
    tally = BacktestTally(settings, at)
    visitors = 0
    if at:
        stream = SampleStream(at, horizon, tally.add)

        def consume(fingerprint: str, event: HistoryEvent) -> None:
            pacer.tick()
            stream.add(fingerprint, event)

        await storage.history_events(at[-1] + horizon, consume)
        stream.finish()
        visitors = len(stream.histories)
    models = {
        model: choose(
            model,
            tally,
            min_positives=settings.learn_min_positives,
            min_gain=settings.learn_min_gain,
        )
        for model in CHECKED_MODELS
    }
    return Evaluation(
        evaluated_at,
        settings.horizon_days,
        tuple(at),
        visitors,
        tally.samples,
        time.monotonic() - started,
        models,
    )
