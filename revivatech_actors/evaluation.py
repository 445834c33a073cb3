"""Backtests of the scores on the stored history: what ``revivatech-actors evaluate`` prints and
``GET /api/analytics/models`` serves (docs/scoring.md, "How the scores are checked").

A backtest reads every stored event once, visitor by visitor, rebuilds each visitor's profile
as of each cut-off (:mod:`.domain.backtest`), scores it with the fixed formulas of the
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
from .domain.backtest import HistoryEvent, cutoffs, samples_of
from .domain.learning import CHECKED_MODELS, BacktestTally, ModelChoice, choose
from .domain.timefmt import iso_datetime
from .storage import Storage

__all__ = ["Evaluation", "evaluate_history"]


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


async def evaluate_history(storage: Storage, settings: ScoringSettings) -> Evaluation:
    """Backtest the scores on everything ``storage`` holds, with ``settings``: at up to
    ``settings.backtest_cutoffs`` cut-offs, labels over ``settings.horizon_days``, a learned
    model fitted and judged against the fixed formula per model. Without enough history (less
    than two horizons) there are no cut-offs and no samples."""
    started = time.monotonic()
    evaluated_at = datetime.now(UTC)
    horizon = timedelta(days=settings.horizon_days)
    bounds = await storage.history_bounds()
    at = [] if bounds is None else cutoffs(*bounds, horizon, settings.backtest_cutoffs)
    tally = BacktestTally(settings, at)
    samples = visitors = 0
    if at:

        def consume(_fingerprint: str, events: list[HistoryEvent]) -> None:
            nonlocal samples
            for sample in samples_of(events, at, horizon):
                tally.add(sample)
                samples += 1

        visitors = await storage.visitor_histories(at[-1] + horizon, consume)
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
        samples,
        time.monotonic() - started,
        models,
    )
