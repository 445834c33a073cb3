"""What a backtest concludes per model: the fixed formula's figures and a learned model's, side by
side on a held-out cut-off, and which of the two scores visitors (docs/scoring.md, "Learned
weights"). Pure: no I/O, no clock. Uses numpy and scikit-learn: only backtests import it.

The samples of every cut-off but the last are the *fit* slice; the last cut-off's are *held out*
(a later time than the fit, as the model will be used). A regularised logistic regression
(scikit-learn, L2, ``C = 1``) is fitted on the fit slice's fractions (:func:`.learned.features_of`);
both the fixed formula and the learned model are then judged on the held-out slice. The learned
model is used only when:

* the fit slice holds at least ``scoring.learn_min_positives`` samples with the outcome, and the
  held-out slice has both outcomes;
* its ROC AUC on the held-out slice beats the fixed formula's by ``scoring.learn_min_gain``.

Otherwise the fixed formula stays. The same samples give the same model (lbfgs is
deterministic; the numbers are rounded to 6 decimals before use).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

import attrs
import numpy as np

from ..config import ScoringSettings
from .backtest import Sample
from .learned import FEATURES, LearnedModel, features_of
from .model_figures import ModelFigures, model_figures
from .scoring import CHURN, LEAD, churn_risk, lead_score
from .timefmt import iso_datetime

__all__ = ["CHECKED_MODELS", "BacktestTally", "ModelChoice", "choose", "fit"]

#: The models a backtest checks, each with the outcome it predicts.
CHECKED_MODELS = (LEAD, CHURN)
_DECIMALS = 6


@attrs.define
class _Table:
    fractions: list[list[float]] = attrs.Factory(list)
    fixed: list[float] = attrs.Factory(list)  # the fixed formula's probability
    outcomes: list[bool] = attrs.Factory(list)
    cutoffs: list[int] = attrs.Factory(list)  # the sample's cut-off, by index


@attrs.define
class BacktestTally:
    """Every sample's fractions, fixed probability and outcome, per model; ``at`` are the
    backtest's cut-offs, oldest first."""

    settings: ScoringSettings
    at: Sequence[datetime]
    tables: dict[str, _Table] = attrs.Factory(lambda: {m: _Table() for m in CHECKED_MODELS})

    @property
    def samples(self) -> int:
        """How many samples were added."""
        return len(self.tables[LEAD].outcomes)

    def add(self, sample: Sample) -> None:
        p, cutoff = sample.profile, sample.cutoff
        index = self.at.index(cutoff)
        fixed = {
            LEAD: (lead_score(p, cutoff, self.settings).value, sample.booked),
            CHURN: (churn_risk(p, cutoff, self.settings).value, sample.inactive),
        }
        for model, table in self.tables.items():
            value, outcome = fixed[model]
            table.fractions.append([x for _, _, x in features_of(model, p, cutoff, self.settings)])
            table.fixed.append(value / 100)
            table.outcomes.append(outcome)
            table.cutoffs.append(index)


@attrs.frozen
class ModelChoice:
    """A backtest's conclusion for one model (see the module docstring)."""

    model_type: str
    in_use: str  # "fixed" or "learned"
    reason: str
    fixed: ModelFigures  # on the held-out slice (every sample without one)
    learned: ModelFigures | None  # None: no model was fitted
    model: LearnedModel | None
    held_out: datetime | None  # the held-out cut-off
    fit_samples: int
    fit_positives: int

    @property
    def version(self) -> str:
        """What ``ml_predictions.model_version`` says of the scores this choice gives."""
        return "fixed" if self.model is None or self.in_use == "fixed" else self.model.version

    def to_json(self) -> dict[str, Any]:
        return {
            "inUse": self.in_use,
            "version": self.version,
            "reason": self.reason,
            "heldOut": None if self.held_out is None else iso_datetime(self.held_out),
            "fit": {"samples": self.fit_samples, "positives": self.fit_positives},
            "fixed": self.fixed.to_json(),
            "learned": None if self.learned is None else self.learned.to_json(),
            "model": None if self.model is None else self.model.to_json(),
        }


def fit(model_type: str, fractions: np.ndarray, outcomes: np.ndarray) -> LearnedModel:
    """A regularised logistic regression of ``outcomes`` on ``fractions`` (rows of
    :data:`.learned.FEATURES` of ``model_type``), its numbers rounded."""
    from sklearn.linear_model import LogisticRegression  # (about a second to import)

    regression = LogisticRegression(C=1.0, max_iter=1000)
    regression.fit(fractions, outcomes)

    def rounded(values: Any) -> tuple[float, ...]:
        return tuple(round(float(v), _DECIMALS) for v in values)

    return LearnedModel(
        model_type,
        FEATURES[model_type],
        round(float(regression.intercept_[0]), _DECIMALS),
        rounded(regression.coef_[0]),
        rounded(fractions.mean(axis=0)),
    )


def choose(
    model_type: str, tally: BacktestTally, *, min_positives: int, min_gain: float
) -> ModelChoice:
    """The fixed formula against a model fitted on the fit slice, on the held-out slice."""
    table = tally.tables[model_type]
    fixed_all = np.asarray(table.fixed, dtype=float)
    outcomes = np.asarray(table.outcomes, dtype=bool)
    cutoffs = np.asarray(table.cutoffs, dtype=int)
    last = len(tally.at) - 1
    if last < 1:
        return ModelChoice(
            model_type,
            "fixed",
            "fixed: fewer than two cut-offs, nothing to hold out (the history is too short)",
            model_figures(fixed_all, outcomes),
            None,
            None,
            None,
            0,
            0,
        )
    held = cutoffs == last
    fitting = ~held
    fit_positives = int(outcomes[fitting].sum())
    fixed_only = ModelChoice(
        model_type,
        "fixed",
        "",
        model_figures(fixed_all[held], outcomes[held]),
        None,
        None,
        tally.at[last],
        int(fitting.sum()),
        fit_positives,
    )
    if fit_positives < min_positives:
        reason = (
            f"fixed: the fit slice has {fit_positives} samples with the outcome, fewer than "
            f"scoring.learn_min_positives = {min_positives}"
        )
        return attrs.evolve(fixed_only, reason=reason)
    if fit_positives == fixed_only.fit_samples:
        return attrs.evolve(
            fixed_only, reason="fixed: every sample of the fit slice has the outcome"
        )
    fractions = np.asarray(table.fractions, dtype=float)
    model = fit(model_type, fractions[fitting], outcomes[fitting])
    learned_p = [model.probability(list(row)) for row in fractions[held]]
    judged = attrs.evolve(fixed_only, learned=model_figures(learned_p, outcomes[held]), model=model)
    fixed_auc, learned_auc = judged.fixed.roc_auc, judged.learned.roc_auc  # type: ignore[union-attr]
    if fixed_auc is None or learned_auc is None:
        reason = "fixed: the held-out cut-off's samples all have the same outcome"
        return attrs.evolve(judged, reason=reason)
    gain = learned_auc - fixed_auc
    verdict = (
        f"ROC AUC {learned_auc:.3f} against {fixed_auc:.3f} for the fixed formula on the "
        f"held-out cut-off (gain {gain:+.3f}, scoring.learn_min_gain = {min_gain:g})"
    )
    in_use = "learned" if gain >= min_gain else "fixed"
    return attrs.evolve(judged, in_use=in_use, reason=f"{in_use}: {verdict}")
