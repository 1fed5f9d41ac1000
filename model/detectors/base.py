"""The one protocol every detector answers: fit, score_many, score_one (higher = more suspicious)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, runtime_checkable

import numpy as np


@runtime_checkable
class Detector(Protocol):
    """An anomaly detector: settings in the constructor, learned attributes end in ``_``.

    Scores are float64 in [0, 1]; higher means more suspicious. Turning a score into an alert
    is the decision policy's job, not the detector's.
    """

    def fit(self, X: np.ndarray) -> Detector:
        """Learn from training rows ``X`` of shape (n, n_features); returns self."""
        ...

    def score_many(self, X: np.ndarray) -> np.ndarray:
        """Scores of the rows of ``X`` (n, n_features) float64 -> (n,) float64."""
        ...

    def score_one(self, x: Sequence[float]) -> float:
        """Score of one row; the per-event path, so it should be cheap."""
        ...
