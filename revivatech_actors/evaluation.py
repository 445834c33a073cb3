"""Backtests of the scores on the stored history: what ``revivatech-actors evaluate`` prints and
``GET /api/analytics/models`` serves (docs/scoring.md, "How the scores are checked").

A backtest reads every stored event once, visitor by visitor, rebuilds each visitor's profile
as of each cut-off (:mod:`.domain.backtest`) and scores it with the fixed formulas of the
settings. It is heavy (seconds for a hundred thousand visitors) and runs on a storage of its own;
the service runs it in a process of its own at a low priority (:mod:`.backtest_process`).
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import Any

import attrs

from .config import ScoringSettings
from .domain.backtest import HistoryEvent, cutoffs, samples_of
from .domain.backtest_figures import FixedFormulaTally
from .domain.model_figures import ModelFigures
from .domain.timefmt import iso_datetime
from .storage import Storage

__all__ = ["Evaluation", "evaluate_history"]


@attrs.frozen
class Evaluation:
    """One backtest's figures (``fixed``: of the fixed formulas, per model type)."""

    evaluated_at: datetime
    horizon_days: float
    cutoffs: tuple[datetime, ...]
    visitors: int
    samples: int
    seconds: float
    fixed: dict[str, ModelFigures]

    def to_json(self) -> dict[str, Any]:
        return {
            "evaluatedAt": iso_datetime(self.evaluated_at),
            "horizonDays": self.horizon_days,
            "cutoffs": [iso_datetime(c) for c in self.cutoffs],
            "visitors": self.visitors,
            "samples": self.samples,
            "seconds": round(self.seconds, 3),
            "models": {
                model: {"inUse": "fixed", "fixed": figures.to_json()}
                for model, figures in self.fixed.items()
            },
        }


async def evaluate_history(storage: Storage, settings: ScoringSettings) -> Evaluation:
    """Backtest the fixed formulas of ``settings`` on everything ``storage`` holds: at up to
    ``settings.backtest_cutoffs`` cut-offs, labels over ``settings.horizon_days``. Without
    enough history (less than two horizons) there are no cut-offs and no samples."""
    started = time.monotonic()
    evaluated_at = datetime.now(UTC)
    horizon = timedelta(days=settings.horizon_days)
    bounds = await storage.history_bounds()
    at = [] if bounds is None else cutoffs(*bounds, horizon, settings.backtest_cutoffs)
    tally = FixedFormulaTally(settings)
    samples = visitors = 0
    if at:

        def consume(_fingerprint: str, events: list[HistoryEvent]) -> None:
            nonlocal samples
            for sample in samples_of(events, at, horizon):
                tally.add(sample)
                samples += 1

        visitors = await storage.visitor_histories(at[-1] + horizon, consume)
    return Evaluation(
        evaluated_at,
        settings.horizon_days,
        tuple(at),
        visitors,
        samples,
        time.monotonic() - started,
        tally.figures(),
    )
