"""Isolation Forest detector: trains with scikit-learn, scores with the sklearn-free CompiledForest.

scikit-learn is imported inside ``fit`` only, so scoring code never pays for it. In a bundle the
detector is the forest's flat arrays (``CompiledForest.to_arrays``) plus its settings as metadata.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

import numpy as np

from fraudstream.model.detectors.base import DetectorParts, NotFitted
from fraudstream.model.detectors.forest import CompiledForest
from fraudstream.model.errors import require


class IsolationForestDetector:
    """Unsupervised detector: rows that random splits isolate quickly score near 1.

    >>> rng = np.random.default_rng(0)
    >>> X = rng.normal(size=(500, 3))
    >>> detector = IsolationForestDetector(n_estimators=20).fit(X)
    >>> detector.score_one([8.0, 8.0, 8.0]) > detector.score_one([0.0, 0.0, 0.0])
    True
    >>> IsolationForestDetector.from_parts(detector.to_parts()).score_one([8.0, 8.0, 8.0]) == detector.score_one([8.0, 8.0, 8.0])
    True
    """

    kind: ClassVar[str] = "isolation_forest"

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

    def __repr__(self) -> str:
        return (
            f"IsolationForestDetector(n_estimators={self.n_estimators}, max_samples={self.max_samples!r}, "
            f"random_state={self.random_state}, max_features={self.max_features})"
        )

    @classmethod
    def from_forest(cls, forest: CompiledForest, **settings: Any) -> IsolationForestDetector:
        """A fitted detector around an already compiled forest (benchmarks, tests, other trainers)."""
        detector = cls(n_estimators=forest.n_trees, max_samples=forest.max_samples, **settings)
        detector.forest_ = forest
        return detector

    @property
    def n_features_in_(self) -> int:
        """Features per row the fitted forest expects."""
        return self._fitted().n_features

    def fit(self, X: np.ndarray, y: np.ndarray | None = None) -> IsolationForestDetector:
        """Fit sklearn's IsolationForest on ``X`` (n, n_features) and compile it; ``y`` is ignored (unsupervised)."""
        IsolationForest = require("sklearn.ensemble", "training an Isolation Forest").IsolationForest

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

    def feature_contributions(self, x: Sequence[float]) -> np.ndarray:
        """How much each feature helped isolate ``x`` (see :meth:`CompiledForest.feature_contributions`)."""
        return self.forest_.feature_contributions(x)

    def to_parts(self) -> DetectorParts:
        """The forest's arrays and the settings it was trained with."""
        forest = self._fitted()
        metadata = {
            "n_estimators": forest.n_trees,
            "max_samples": forest.max_samples,
            "n_features": forest.n_features,
            "random_state": self.random_state,
            "max_features": self.max_features,
        }
        return DetectorParts(self.kind, forest.to_arrays(), metadata)

    @classmethod
    def from_parts(cls, parts: DetectorParts) -> IsolationForestDetector:
        """Rebuild from :meth:`to_parts` output; the arrays are validated by ``CompiledForest.from_arrays``."""
        if parts.kind != cls.kind:
            raise ValueError(f"expected a {cls.kind!r} detector, got {parts.kind!r}")
        forest = CompiledForest.from_arrays(parts.arrays)
        settings = {k: parts.metadata[k] for k in ("random_state", "max_features") if k in parts.metadata}
        return cls.from_forest(forest, **settings)

    def _fitted(self) -> CompiledForest:
        forest: CompiledForest | None = getattr(self, "forest_", None)
        if forest is None:
            raise NotFitted("this IsolationForestDetector is not fitted yet: call fit(X) first")
        return forest
