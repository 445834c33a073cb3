"""How well a score ranks and predicts a yes/no outcome (docs/scoring.md, "What the figures
mean"). Pure: no I/O.

A score in [0, 100] is read as the probability ``score / 100`` of the outcome.

* ``rocAuc``: the chance that a visitor with the outcome scored higher than one without (ties
  count half): 0.5 is a coin, 1 a perfect ranking. None when the samples hold one class only.
* ``brier``: the mean squared gap between the probability and the outcome (0 or 1): 0 is perfect;
  always answering the base rate scores ``base rate × (1 - base rate)``.
* ``calibration``: the samples in ten bins of probability, each with its mean probability and
  the share that had the outcome; a calibrated score has the two close in every bin.
"""

from __future__ import annotations

from typing import Any

import attrs
import numpy as np
from numpy.typing import ArrayLike

__all__ = ["CalibrationBin", "ModelFigures", "model_figures"]

#: Bins of the calibration table, of equal width over [0, 1].
BINS = 10


@attrs.frozen
class CalibrationBin:
    low: float  # probabilities from low (included) to high (excluded, but 1.0 in the last)
    high: float
    predicted: float  # mean probability of the bin's samples
    observed: float  # share of them with the outcome
    samples: int

    def to_json(self) -> dict[str, Any]:
        return {
            "from": self.low,
            "to": self.high,
            "predicted": round(self.predicted, 4),
            "observed": round(self.observed, 4),
            "samples": self.samples,
        }


@attrs.frozen
class ModelFigures:
    samples: int
    positives: int
    roc_auc: float | None  # None: one class only
    brier: float | None  # None: no samples
    calibration: tuple[CalibrationBin, ...]

    @property
    def base_rate(self) -> float | None:
        return self.positives / self.samples if self.samples else None

    def to_json(self) -> dict[str, Any]:
        return {
            "samples": self.samples,
            "positives": self.positives,
            "baseRate": None if self.base_rate is None else round(self.base_rate, 4),
            "rocAuc": None if self.roc_auc is None else round(self.roc_auc, 4),
            "brier": None if self.brier is None else round(self.brier, 4),
            "calibration": [b.to_json() for b in self.calibration],
        }


def model_figures(probabilities: ArrayLike, outcomes: ArrayLike) -> ModelFigures:
    """The figures of ``probabilities`` (each in [0, 1]) against ``outcomes``, pairwise."""
    p = np.clip(np.asarray(probabilities, dtype=float), 0.0, 1.0)
    y = np.asarray(outcomes, dtype=bool)
    if len(p) != len(y):
        msg = f"{len(p)} probabilities for {len(y)} outcomes"
        raise ValueError(msg)
    positives = int(y.sum())
    if len(p) == 0:
        return ModelFigures(0, 0, None, None, ())
    # Imported here: it takes about a second, and only backtests (in processes of their own)
    # need it, never `serve`.
    from sklearn.metrics import roc_auc_score

    auc = float(roc_auc_score(y, p)) if 0 < positives < len(y) else None
    brier = float(np.mean((p - y) ** 2))
    index = np.minimum((p * BINS).astype(int), BINS - 1)
    bins = []
    for i in range(BINS):
        inside = index == i
        count = int(inside.sum())
        if count:
            bins.append(
                CalibrationBin(
                    i / BINS,
                    (i + 1) / BINS,
                    float(p[inside].mean()),
                    float(y[inside].mean()),
                    count,
                )
            )
    return ModelFigures(len(p), positives, auc, brier, tuple(bins))
