"""The naive baselines every quality figure stands beside (issue 10): what a new user writes in five lines.

- **naive IsolationForest**: scikit-learn's ``IsolationForest`` (100 trees, its default 256 rows
  per tree, seed 0) on the amount, the local hour and the day of week, plus the card-to-merchant
  distance where the data has coordinates. No feature engineering, no labels.
- **amount alone**: the amount itself as the score (larger = more suspicious).

A model that does not beat these on a user's data does not earn its keep there. Used by
``fraudstream evaluate`` (fitted on the evaluated rows themselves) and by
``benchmarks/bench_quality.py`` (fitted on the training weeks). scikit-learn is imported inside
:func:`naive_iforest` only.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING

import numpy as np

from fraudstream.model.errors import require
from fraudstream.model.features.step import INDEX

if TYPE_CHECKING:
    from fraudstream.model.schema import Transaction

NAIVE_TREES = 100
NAIVE_SEED = 0


def naive_column_names(with_distance: bool) -> list[str]:
    """The naive forest's inputs, in words (for reports)."""
    return ["amount", "hour of day", "day of week"] + (["distance from home"] if with_distance else [])


def naive_columns(X: np.ndarray, *, with_distance: bool) -> np.ndarray:
    """(n, 3 or 4) amount, hour of day, day of week (+ distance from home), from feature rows ``X``."""
    X = np.asarray(X, dtype=np.float64)
    cols = [np.expm1(X[:, INDEX["amount_log"]]), X[:, INDEX["hour_of_day"]], X[:, INDEX["day_of_week"]]]
    if with_distance:
        cols.append(X[:, INDEX["distance_home_km"]])
    return np.column_stack(cols)


def naive_iforest(X_fit: np.ndarray, *, with_distance: bool) -> Callable[[np.ndarray], np.ndarray]:
    """Fit the naive IsolationForest on feature rows ``X_fit``; returns its scorer (higher = more suspicious).

    >>> X = np.zeros((300, len(INDEX))); X[:, INDEX["amount_log"]] = np.log1p(np.arange(300.0))
    >>> score = naive_iforest(X, with_distance=False)
    >>> bool(score(X)[-1] > score(X)[150])  # the largest amount is the easiest to isolate
    True
    """
    IsolationForest = require("sklearn.ensemble", "the naive IsolationForest baseline").IsolationForest

    forest = IsolationForest(n_estimators=NAIVE_TREES, random_state=NAIVE_SEED, n_jobs=1)
    forest.fit(naive_columns(X_fit, with_distance=with_distance))
    return lambda X: -forest.score_samples(naive_columns(X, with_distance=with_distance))


def amount_alone(X: np.ndarray) -> np.ndarray:
    """The amount as the score (its log: the same order)."""
    return np.asarray(X, dtype=np.float64)[:, INDEX["amount_log"]].copy()


def has_coordinates(txns: Iterable[Transaction]) -> bool:
    """Whether any transaction has both the card's and the merchant's coordinates (so a distance exists)."""
    return any(None not in (t.card_lat, t.card_lon, t.merchant_lat, t.merchant_lon) for t in txns)
