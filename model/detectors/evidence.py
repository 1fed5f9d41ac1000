"""The recommended detector of issue 10: one-sided tail evidence per feature, weighed by confirmed frauds.

Each feature with a known fraud direction (:mod:`directions`) becomes *evidence*: -log of the
share of training transactions at least as extreme in that direction (numpy tables,
:class:`~fraudstream.model.detectors.tail_table.TailTable`). Evidence is then combined:

- **with labels** (at least ``min_frauds`` confirmed frauds in training, 20 by default): a weighted sum, the
  weights learned by a class-balanced logistic regression held non-negative, so a feature can
  be ignored but its direction never flips. What counts on a given data set (amount on one,
  night hours and emptied balances on another) is learned; what "unusual" means is not.
- **without labels**: an isolation forest over the evidence columns (every tail on the same
  log-probability scale, the harmless side at zero), compiled for serving like the default.

The score is -log10 of the share of training transactions scoring at least as high (2.0 = top
1 %), so an alert budget means the same after every retrain. Reasons are the features with the
largest contributions. Everything needed to serve is in :meth:`to_arrays` (numpy only).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from fraudstream.model.detectors.directions import Direction
from fraudstream.model.detectors.forest import CompiledForest
from fraudstream.model.detectors.tail_table import RareTable, TailTable
from fraudstream.model.detectors.tails import TailEvidenceDetector, _non_negative_logistic
from fraudstream.model.features.step import FEATURE_NAMES

LN10 = np.log(10.0)
_DIRECTION_CODES: dict[str, int] = {"up": 0, "down": 1, "rare": 2}


class EvidenceDetector:
    """fit(X, y=None) -> one-sided evidence -> weighted sum (labels) or evidence forest (none) -> calibrated score.

    >>> rng = np.random.default_rng(0)
    >>> X = rng.gamma(2.0, 1.0, (3_000, len(FEATURE_NAMES)))
    >>> det = EvidenceDetector(n_estimators=20, max_samples=256).fit(X)
    >>> det.mode_
    'forest'
    >>> round(float(np.mean(det.score_samples(X) >= 2.0)), 2)  # a score of 2 is the top 1 %
    0.01
    """

    def __init__(self, feature_names: tuple[str, ...] = FEATURE_NAMES, *, min_frauds: int = 20,
                 n_estimators: int = 300, max_samples: int = 1024, random_state: int = 0,
                 overrides: dict[str, tuple[str, Direction] | None] | None = None) -> None:
        self.feature_names = feature_names
        self.min_frauds = min_frauds
        self.n_estimators = n_estimators
        self.max_samples = max_samples
        self.random_state = random_state
        self.overrides = overrides

    # ---- training (numpy, scipy; scikit-learn only for the no-label forest)

    def fit(self, X: np.ndarray, y: np.ndarray | None = None) -> EvidenceDetector:
        """Learn the tail tables, then the weights (labels) or the evidence forest (no labels)."""
        X = np.asarray(X, dtype=np.float64)
        tails = TailEvidenceDetector(self.feature_names, overrides=self.overrides).fit(X)
        self.columns_ = np.array(sorted(tails.tables_), dtype=np.int64)
        self.directions_ = np.array([_DIRECTION_CODES[tails.directions_[i]] for i in self.columns_], dtype=np.int64)
        self.tables_: list[TailTable | RareTable] = [tails.tables_[i] for i in self.columns_]
        self.dropped_ = dict(tails.dropped_)
        E = self.evidence(X)
        labelled = y is not None and int(np.sum(y)) >= self.min_frauds
        if labelled:
            self.mode_ = "weighted"
            self.weights_ = _non_negative_logistic(E, np.asarray(y) == 1)
            self.forest_: CompiledForest | None = None
        else:
            from fraudstream.model.detectors.isolation_forest import IsolationForestDetector

            self.mode_ = "forest"
            self.weights_ = np.ones(E.shape[1])
            self.forest_ = IsolationForestDetector(self.n_estimators, self.max_samples, self.random_state).fit(E).forest_
        self.calibration_ = TailTable.fit(self._raw(E), interpolate=True)
        return self

    # ---- serving (numpy only)

    def evidence(self, X: np.ndarray) -> np.ndarray:
        """(n, k) evidence in nats of the used features, in the order of ``columns_``."""
        X = np.asarray(X, dtype=np.float64)
        out = np.empty((X.shape[0], len(self.tables_)))
        for j, (i, d, table) in enumerate(zip(self.columns_, self.directions_, self.tables_)):
            col = X[:, i]
            if d == 2:
                out[:, j] = table.score(col)  # type: ignore[union-attr]
            else:
                out[:, j] = table.neg_log_tail(-col if d == 1 else col)  # type: ignore[union-attr]
        return out

    def _raw(self, E: np.ndarray) -> np.ndarray:
        if self.forest_ is not None:
            return self.forest_.score_many(E)
        return E @ self.weights_

    def score_samples(self, X: np.ndarray) -> np.ndarray:
        """-log10 of the training share scoring at least as high; higher = more suspicious."""
        return self.calibration_.neg_log_tail(self._raw(self.evidence(X))) / LN10

    score_many = score_samples

    def score_one(self, x: Sequence[float]) -> float:
        """Score of one row on a plain-Python path (bisect on lists): the per-event cost, ~10x below numpy's."""
        fast = self.__dict__.get("_fast") or self._compile()
        evidence = [f(float(x[i])) for i, f in fast]
        if self.forest_ is not None:
            raw = self.forest_.score_one(evidence)
        else:
            raw = sum(w * e for w, e in zip(self._weights_list, evidence))
        return self._calibrate_one(raw) / LN10

    def _compile(self) -> list[tuple[int, Any]]:
        fast = [(int(i), _one_value(table, int(d))) for i, d, table in zip(self.columns_, self.directions_, self.tables_)]
        self.__dict__["_fast"] = fast
        self._weights_list = [float(w) for w in self.weights_]
        self._calibrate_one = _one_value(self.calibration_, 0)
        return fast

    def contributions(self, X: np.ndarray) -> np.ndarray:
        """(n, n_features) share of the evidence each feature brought (weighted in ``weighted`` mode)."""
        E = self.evidence(X) * self.weights_
        out = np.zeros((E.shape[0], len(self.feature_names)))
        out[:, self.columns_] = E
        return out

    def reasons(self, x: Sequence[float], top: int = 3, min_nats: float = float(np.log(20.0))) -> list[str]:
        """Names of the features that fired (tail probability < 5 %), largest contribution first."""
        row = np.asarray(x, dtype=np.float64)[None, :]
        evidence = np.zeros(len(self.feature_names))
        evidence[self.columns_] = self.evidence(row)[0]
        contribution = self.contributions(row)[0]
        order = np.argsort(-contribution, kind="stable")
        return [self.feature_names[i] for i in order[:top] if evidence[i] >= min_nats and contribution[i] > 0]

    # ---- bundle

    def to_arrays(self) -> dict[str, np.ndarray]:
        """Everything needed to score, as plain arrays (no pickles), for a bundle's ``.npz``."""
        arrays: dict[str, np.ndarray] = {
            "columns": self.columns_, "directions": self.directions_, "weights": self.weights_,
            "mode": np.array([0 if self.mode_ == "weighted" else 1]),
        }
        for j, table in enumerate(self.tables_):
            if isinstance(table, RareTable):
                arrays[f"t{j}_edges"] = table.edges
                arrays[f"t{j}_rare"] = table.neg_log_tail
            else:
                arrays.update(table.to_arrays(f"t{j}_"))
        arrays.update(self.calibration_.to_arrays("cal_"))
        if self.forest_ is not None:
            arrays.update({f"forest_{k}": v for k, v in self.forest_.to_arrays().items()})
        return arrays

    @classmethod
    def from_arrays(cls, arrays: Mapping[str, np.ndarray], feature_names: tuple[str, ...] = FEATURE_NAMES,
                    **settings: Any) -> EvidenceDetector:
        """Rebuild a fitted detector from :meth:`to_arrays` output (no scikit-learn needed)."""
        det = cls(feature_names, **settings)
        a = dict(arrays)
        det.columns_ = np.asarray(a["columns"], dtype=np.int64)
        det.directions_ = np.asarray(a["directions"], dtype=np.int64)
        det.weights_ = np.asarray(a["weights"], dtype=np.float64)
        det.mode_ = "weighted" if int(a["mode"][0]) == 0 else "forest"
        det.tables_ = [RareTable(a[f"t{j}_edges"], a[f"t{j}_rare"]) if d == 2 else TailTable.from_arrays(a, f"t{j}_")
                       for j, d in enumerate(det.directions_)]
        det.calibration_ = TailTable.from_arrays(a, "cal_")
        forest = {k[len("forest_"):]: v for k, v in a.items() if k.startswith("forest_")}
        det.forest_ = CompiledForest.from_arrays(forest) if forest else None
        det.dropped_ = {}
        return det


def _one_value(table: TailTable | RareTable, direction: int) -> Any:
    """A function of one float equal to the table's numpy scoring of that value (lists and bisect)."""
    from bisect import bisect_left, bisect_right
    from math import inf, log

    if isinstance(table, RareTable):
        edges, tail = table.edges.tolist(), table.neg_log_tail.tolist()
        last, outside = len(edges) - 2, len(edges) - 1

        def rare(x: float) -> float:
            idx = last if x == edges[-1] else bisect_right(edges, x) - 1
            return tail[outside if idx < 0 or idx > last else idx]
        return rare
    knots, neg = table.knots.tolist(), (-table.log_tail).tolist()
    end, top, spread, log2 = knots[-1], neg[-1], table.spread, log(2.0)
    interpolate = table.interpolate
    start, start_neg, scale = table.tail_start, -table.tail_log_p, table.tail_scale
    sign = -1.0 if direction == 1 else 1.0

    def upper(x: float) -> float:
        x *= sign
        if start != inf and x > start:
            return start_neg + (x - start) / scale
        idx = bisect_left(knots, x)
        if idx == len(knots):
            return top + (x - end) / spread + (0.0 if interpolate else log2)
        if not interpolate or idx == 0 or x == knots[idx]:
            return neg[idx]
        lo, hi = knots[idx - 1], knots[idx]
        return neg[idx - 1] + (neg[idx] - neg[idx - 1]) * (x - lo) / (hi - lo)
    return upper
