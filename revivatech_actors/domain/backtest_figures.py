"""The figures of a backtest's samples (:mod:`.backtest`), per model it checks. Pure: no I/O."""

from __future__ import annotations

import attrs

from ..config import ScoringSettings
from .backtest import Sample
from .model_figures import ModelFigures, model_figures
from .scoring import CHURN, LEAD, churn_risk, lead_score

__all__ = ["CHECKED_MODELS", "FixedFormulaTally"]

#: The models a backtest checks, each with the outcome it predicts.
CHECKED_MODELS = (LEAD, CHURN)


@attrs.define
class FixedFormulaTally:
    """The fixed formulas' probabilities (score / 100) and the outcomes, sample by sample, for
    :data:`CHECKED_MODELS`; :meth:`figures` sums them up."""

    settings: ScoringSettings
    probabilities: dict[str, list[float]] = attrs.Factory(lambda: {m: [] for m in CHECKED_MODELS})
    outcomes: dict[str, list[bool]] = attrs.Factory(lambda: {m: [] for m in CHECKED_MODELS})

    def add(self, sample: Sample) -> None:
        p, at = sample.profile, sample.cutoff
        self.probabilities[LEAD].append(lead_score(p, at, self.settings).value / 100)
        self.outcomes[LEAD].append(sample.booked)
        self.probabilities[CHURN].append(churn_risk(p, at, self.settings).value / 100)
        self.outcomes[CHURN].append(sample.inactive)

    def figures(self) -> dict[str, ModelFigures]:
        return {
            model: model_figures(self.probabilities[model], self.outcomes[model])
            for model in CHECKED_MODELS
        }
