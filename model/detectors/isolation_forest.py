"""Isolation Forest detector: trains with scikit-learn, scores with the sklearn-free CompiledForest.

scikit-learn is imported inside ``fit`` only, so scoring code never pays for it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from fraudstream.model.detectors.forest import CompiledForest


class IsolationForestDetector:
    """Unsupervised detector: rows that random splits isolate quickly score near 1.

    >>> rng = np.random.default_rng(0)
    >>> X = rng.normal(size=(500, 3))
    >>> detector = IsolationForestDetector(n_estimators=20).fit(X)
    >>> detector.score_one([8.0, 8.0, 8.0]) > detector.score_one([0.0, 0.0, 0.0])
    True
    """

    def __init__(
        self,
        n_estimators: int = 100,
        max_samples: int | str = 256,
        random_state: int = 0,
        max_features: float = 1.0,
    ) -> None:
        self.n_estimators = n_estimators
        self.max_samples = max_samples
        self.random_state = random_state
        self.max_features = max_features

    def fit(self, X: np.ndarray) -> IsolationForestDetector:
        """Fit sklearn's IsolationForest on ``X`` (n, n_features) and compile it for scoring."""
        from sklearn.ensemble import IsolationForest

        X = np.asarray(X, dtype=np.float64)
        if X.ndim != 2 or X.shape[0] == 0:
            raise ValueError(f"X must be a non-empty 2-d array, got shape {X.shape}")
        if np.isnan(X).any():
            raise ValueError("X contains NaN")
        max_samples: Any = self.max_samples
        if isinstance(max_samples, int) and max_samples > X.shape[0]:
            max_samples = X.shape[0]  # what sklearn would do anyway, minus its warning
        self.estimator_ = IsolationForest(
            n_estimators=self.n_estimators,
            max_samples=max_samples,
            max_features=self.max_features,
            contamination="auto",
            random_state=self.random_state,
            n_jobs=1,
        ).fit(X)
        self.forest_ = CompiledForest.from_sklearn(self.estimator_)
        return self

    def score_many(self, X: np.ndarray) -> np.ndarray:
        """Scores in (0, 1] of the rows of ``X``; equal to ``-estimator_.score_samples(X)``."""
        return self.forest_.score_many(X)

    def score_one(self, x: Sequence[float]) -> float:
        """Score of one row (list, tuple or 1-d array)."""
        return self.forest_.score_one(x)
