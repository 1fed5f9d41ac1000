"""The default detector (issue 10): one-sided tail evidence per feature, weighed by confirmed frauds.

Each feature with a known fraud direction (:mod:`directions`) becomes *evidence*: -log of the
share of training transactions at least as extreme in that direction (numpy tables,
:class:`~fraudstream.model.detectors.tail_table.TailTable`). Evidence is then combined:

- **with labels** (at least ``min_frauds`` confirmed frauds in training, 20 by default): a weighted sum, the
  weights learned by a class-balanced logistic regression held non-negative, so a feature can
  be ignored but its direction never flips. What counts on a given data set (amount on one,
  night hours and emptied balances on another) is learned; what "unusual" means is not.
- **without labels**: an isolation forest over the evidence columns (every tail on the same
  log-probability scale, the harmless side at zero), compiled for serving like the default. Its
  tail tables and forest learn from cards with a baseline (at least ``warm_history`` earlier
  transactions, 3 by default): a card's first transactions have no usual amount, hour or pace, and
  their cold-start ratios would make the tails of "unusual for this card" too wide (the quality
  harness: better on six of its seven data sets). The bundle's ``fitted_on`` says which rows.

Calibration: ``s`` = -log10 of the share of training transactions scoring at least as high
(2 = top 1 %), so an alert budget means the same after every retrain. The served score is
``s / (1 + s)``, in [0, 1) like every detector's and in the same order as ``s``: 0.5 = top 10 %
of training, 0.667 = top 1 %, 0.75 = top 0.1 %. Reasons are the features with the largest weight
× evidence. The bundle holds numpy arrays and JSON metadata only (:meth:`to_parts`); serving
imports neither scikit-learn nor scipy.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from collections.abc import Callable, Mapping, Sequence
from math import inf, isnan, log, log1p
from typing import Any, ClassVar

import numpy as np

from fraudstream.model.detectors.base import DetectorParts, NotFitted
from fraudstream.model.detectors.directions import Direction
from fraudstream.model.detectors.forest import CompiledForest
from fraudstream.model.detectors.tail_table import RareTable, TailTable
from fraudstream.model.detectors.tails import TailEvidenceDetector, _non_negative_logistic
from fraudstream.model.features.step import FEATURE_NAMES

LN10 = float(np.log(10.0))
# Evidence is capped (in nats) so that absurd inputs (1e300) stay finite through sums and the
# forest's float32 cast; no real value comes near it (e^-1e9 is no probability anyone measures).
EVIDENCE_CAP = 1e9
_DIRECTION_CODES: dict[str, int] = {"up": 0, "down": 1, "rare": 2}
_DIRECTION_WORDS = ("larger is suspicious", "smaller is suspicious", "rare values are suspicious")
MODES = ("weighted", "forest")
# Without labels, tail tables and forest are learned from cards with at least this many earlier
# transactions (the calibration still counts every row); when fewer than MIN_WARM_ROWS or
# MIN_WARM_SHARE of the rows are that warm, from every row.
WARM_HISTORY = 3
MIN_WARM_ROWS = 256
MIN_WARM_SHARE = 0.2


def unit_score(s: np.ndarray) -> np.ndarray:
    """-log10 training tail ``s`` (>= 0) -> the served score ``s / (1 + s)`` in [0, 1), same order.

    >>> unit_score(np.array([0.0, 1.0, 2.0, 3.0])).round(3).tolist()  # top 100 %, 10 %, 1 %, 0.1 %
    [0.0, 0.5, 0.667, 0.75]
    """
    return s / (1.0 + s)


def tail_share(score: float) -> float:
    """The share of training transactions scoring at least ``score`` (the inverse of :func:`unit_score`).

    >>> round(tail_share(2 / 3), 6)
    0.01
    """
    return float(10.0 ** (-score / (1.0 - score))) if score < 1.0 else 0.0


class EvidenceDetector:
    """fit(X, y=None) -> one-sided evidence -> weighted sum (labels) or evidence forest (none) -> calibrated score.

    >>> rng = np.random.default_rng(0)
    >>> X = rng.gamma(2.0, 1.0, (3_000, len(FEATURE_NAMES)))
    >>> det = EvidenceDetector(n_estimators=20, max_samples=256).fit(X)
    >>> det.mode_
    'forest'
    >>> round(float(np.mean(det.neg_log10_tail(X) >= 2.0)), 2)  # s = 2 is the top 1 % of training
    0.01
    >>> round(float(np.mean(det.score_many(X) >= 2 / 3)), 2)  # the same rows, on the served [0, 1) scale
    0.01
    """

    kind: ClassVar[str] = "evidence"

    def __init__(self, feature_names: Sequence[str] = FEATURE_NAMES, *, min_frauds: int = 20,
                 n_estimators: int = 300, max_samples: int = 1024, random_state: int = 0,
                 overrides: Mapping[str, tuple[str, Direction] | None] | None = None,
                 warm_history: int = WARM_HISTORY) -> None:
        self.feature_names = tuple(feature_names)
        self.warm_history = warm_history
        self.min_frauds = min_frauds
        self.n_estimators = n_estimators
        self.max_samples = max_samples
        self.random_state = random_state
        self.overrides = dict(overrides) if overrides is not None else None

    def __repr__(self) -> str:
        return (f"EvidenceDetector(min_frauds={self.min_frauds}, n_estimators={self.n_estimators}, "
                f"max_samples={self.max_samples}, random_state={self.random_state}, warm_history={self.warm_history})")

    def __reduce__(self) -> tuple[Any, ...]:
        # The single-row path holds closures, which cannot be pickled: rebuild from the parts (as the
        # compiled forest does), e.g. when a runtime ships the model to its workers.
        return (EvidenceDetector.from_parts, (self.to_parts(),))

    @property
    def n_features_in_(self) -> int:
        """Features per row the fitted detector expects."""
        self._fitted()
        return len(self.feature_names)

    # ---- training (numpy; scikit-learn only for the no-label forest, imported inside fit)

    def fit(self, X: np.ndarray, y: np.ndarray | Sequence[int] | None = None) -> EvidenceDetector:
        """Learn the tail tables, then the weights (>= ``min_frauds`` labelled frauds) or the evidence forest."""
        X = np.asarray(X, dtype=np.float64)
        if X.ndim != 2 or X.shape[0] < 2 or X.shape[1] != len(self.feature_names):
            raise ValueError(f"X must be a (n >= 2, {len(self.feature_names)}) matrix, got shape {X.shape}")
        if np.isnan(X).any():
            raise ValueError("X contains NaN")
        fraud = None if y is None else np.asarray(y).reshape(-1) == 1
        if fraud is not None and fraud.size != X.shape[0]:
            raise ValueError(f"y has {fraud.size} labels for {X.shape[0]} rows")
        frauds = int(fraud.sum()) if fraud is not None else 0
        enough = fraud is not None and frauds >= self.min_frauds and frauds < fraud.size
        # Without labels, "unusual" is learned from cards that have a baseline (see warm_rows); with
        # labels, the weights learn from every row, a card's first transactions included.
        rows = np.ones(X.shape[0], dtype=bool) if enough else self.warm_rows(X)
        fit_on = X[rows]
        tails = TailEvidenceDetector(self.feature_names, overrides=self.overrides).fit(fit_on)
        self.columns_ = np.array(sorted(tails.tables_), dtype=np.int64)
        self.directions_ = np.array([_DIRECTION_CODES[tails.directions_[i]] for i in self.columns_], dtype=np.int64)
        self.tables_: list[TailTable | RareTable] = [tails.tables_[i] for i in self.columns_]
        self.dropped_ = self._why_dropped(fit_on, tails.dropped_)
        self.fitted_on_ = {"rows": int(rows.sum()), "of": int(X.shape[0]),
                           "why": ("every training row" if rows.all() else
                                   f"rows of cards with at least {self.warm_history} earlier transactions "
                                   "(a card's first ones have no baseline to be unusual against)")}
        E = self.evidence(fit_on)
        labelled = enough and E.shape[1] > 0
        self.labels_ = {"given": fraud is not None, "frauds": frauds, "used": bool(labelled)}
        self.forest_: CompiledForest | None = None
        if labelled:
            self.mode_ = "weighted"
            self.weights_ = _non_negative_logistic(E, fraud)
        else:
            from fraudstream.model.detectors.isolation_forest import IsolationForestDetector

            self.mode_ = "forest"
            self.weights_ = np.ones(E.shape[1])
            trained = IsolationForestDetector(self.n_estimators, self.max_samples, self.random_state).fit(
                E if E.shape[1] else np.zeros((E.shape[0], 1)))
            self.forest_ = trained.forest_
            self.estimator_ = trained.estimator_  # training-time only (the contract's reference); never saved
        # Calibrated on every training row, so a budget is a share of all transactions, as it is served.
        self.calibration_ = TailTable.fit(self.raw_scores(X), interpolate=True)
        self._prepare()
        return self

    def warm_rows(self, X: np.ndarray) -> np.ndarray:
        """Rows of cards with at least ``warm_history`` earlier transactions: a card's usual amount, hours and
        pace mean little over its first few, and learned with them the tails of "unusual for this card" are
        cold-start noise. All rows when the features lack the card's history, or too few rows are warm."""
        if self.warm_history <= 0 or "card_history_log" not in self.feature_names:
            return np.ones(X.shape[0], dtype=bool)
        warm = X[:, self.feature_names.index("card_history_log")] >= log1p(self.warm_history) - 1e-12
        return warm if warm.sum() >= max(MIN_WARM_ROWS, MIN_WARM_SHARE * X.shape[0]) else np.ones(X.shape[0], dtype=bool)

    def _why_dropped(self, X: np.ndarray, dropped: Mapping[str, str]) -> dict[str, str]:
        """Feature -> why it carries no evidence in this model (the bundle lists it; issue 10 item 3)."""
        used = {self.feature_names[i] for i in self.columns_}
        out: dict[str, str] = {}
        for i, name in enumerate(self.feature_names):
            if name in used:
                continue
            if name in dropped:
                col = X[:, i]
                out[name] = (f"constant in training (always {col[0]:g}): missing from the data or never varies"
                             if np.ptp(col) == 0 else "nearly constant in training, nothing on its fraud side")
            else:
                out[name] = "no fraud direction: not evidence on its own"
        return out

    # ---- serving (numpy and the standard library only)

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
        return np.minimum(out, EVIDENCE_CAP, out=out)

    def raw_scores(self, X: np.ndarray) -> np.ndarray:
        """The combined evidence before calibration (the weighted sum, or the forest's score)."""
        E = self.evidence(X)
        if self.forest_ is not None:
            return self.forest_.score_many(E if E.shape[1] else np.zeros((E.shape[0], 1)))
        return E @ self.weights_

    def neg_log10_tail(self, X: np.ndarray) -> np.ndarray:
        """s = -log10 of the training share scoring at least as high (2.0 = top 1 % of training)."""
        self._fitted()
        return self.calibration_.neg_log_tail(self.raw_scores(X)) / LN10

    def score_many(self, X: np.ndarray) -> np.ndarray:
        """Served scores in [0, 1): ``s / (1 + s)``, the order of :meth:`neg_log10_tail`."""
        return unit_score(self.neg_log10_tail(X))

    score_samples = score_many  # the scikit-learn name, as the quality harness calls it

    def score_one(self, x: Sequence[float]) -> float:
        """One row on a plain-Python path (bisect on lists, no numpy per call); equals :meth:`score_many`."""
        fast = self.__dict__.get("_fast")
        if fast is None:
            self._fitted()
            raise NotFitted("this EvidenceDetector has no single-row path yet")
        evidence = [min(f(float(x[i])), EVIDENCE_CAP) for i, f in fast]
        if self.forest_ is not None:
            raw = self.forest_.score_one(evidence or [0.0])
        else:
            raw = 0.0
            for w, e in zip(self._weights_list, evidence):
                raw += w * e
        s = self._calibrate_one(raw) / LN10
        return s / (1.0 + s)

    def feature_contributions(self, x: Sequence[float]) -> np.ndarray:
        """(n_features,) weight × evidence of each used feature (0 for the others): what pushed the score up."""
        row = np.asarray(x, dtype=np.float64).reshape(1, -1)
        out = np.zeros(len(self.feature_names))
        out[self.columns_] = self.evidence(row)[0] * self.weights_
        return out

    def contributions(self, X: np.ndarray) -> np.ndarray:
        """(n, n_features) weight × evidence, row by row (the batch form of :meth:`feature_contributions`)."""
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

    def _prepare(self) -> None:
        """The single-row path: each table as a function of one float (lists and bisect)."""
        self.__dict__["_fast"] = [(int(i), _one_value(table, int(d)))
                                  for i, d, table in zip(self.columns_, self.directions_, self.tables_)]
        self._weights_list = [float(w) for w in self.weights_]
        self._calibrate_one = _one_value(self.calibration_, 0)

    def _fitted(self) -> None:
        if getattr(self, "calibration_", None) is None:
            raise NotFitted("this EvidenceDetector is not fitted yet: call fit(X) first")

    # ---- bundle

    def to_parts(self) -> DetectorParts:
        """Arrays (tables, weights, forest) and JSON metadata: the mode, labels, weights and dropped features by name."""
        self._fitted()
        arrays: dict[str, np.ndarray] = {"columns": self.columns_, "directions": self.directions_,
                                         "weights": np.asarray(self.weights_, dtype=np.float64)}
        for j, table in enumerate(self.tables_):
            if isinstance(table, RareTable):
                arrays[f"t{j}_edges"] = table.edges
                arrays[f"t{j}_rare"] = table.neg_log_tail
            else:
                arrays.update(table.to_arrays(f"t{j}_"))
        arrays.update(self.calibration_.to_arrays("cal_"))
        if self.forest_ is not None:
            arrays.update({f"forest_{k}": v for k, v in self.forest_.to_arrays().items()})
        names = [self.feature_names[i] for i in self.columns_]
        metadata: dict[str, Any] = {
            "feature_names": list(self.feature_names),
            "mode": self.mode_,
            "combined_by": (f"non-negative logistic weights from {self.labels_['frauds']:,} confirmed frauds"
                            if self.mode_ == "weighted" else
                            f"an isolation forest over the evidence ({self.forest_.n_trees} trees; "  # type: ignore[union-attr]
                            f"{self._why_no_weights()})"),
            "labels": dict(self.labels_),
            "used": {name: _DIRECTION_WORDS[int(d)] for name, d in zip(names, self.directions_)},
            "weights": ({name: float(w) for name, w in zip(names, self.weights_)} if self.mode_ == "weighted" else None),
            "dropped": dict(self.dropped_),
            "fitted_on": dict(self.fitted_on_),
            "score": "s / (1 + s), s = -log10 of the share of training transactions scoring at least as high",
            "settings": {"min_frauds": self.min_frauds, "n_estimators": self.n_estimators,
                         "max_samples": self.max_samples, "random_state": self.random_state,
                         "warm_history": self.warm_history,
                         "overrides": ({k: (list(v) if v is not None else None) for k, v in self.overrides.items()}
                                       if self.overrides is not None else None)},
        }
        return DetectorParts(self.kind, arrays, metadata)

    def _why_no_weights(self) -> str:
        if not self.labels_["given"]:
            return "no labels in training"
        return f"{self.labels_['frauds']} labelled frauds, fewer than the {self.min_frauds} needed to weigh features"

    @classmethod
    def from_parts(cls, parts: DetectorParts) -> EvidenceDetector:
        """Rebuild from :meth:`to_parts` output, validating every array (no scikit-learn, no code from the files)."""
        if parts.kind != cls.kind:
            raise ValueError(f"expected a {cls.kind!r} detector, got {parts.kind!r}")
        meta = dict(parts.metadata)
        settings = dict(meta.get("settings") or {})
        names = meta.get("feature_names")
        if not isinstance(names, list) or not names or not all(isinstance(n, str) for n in names):
            raise ValueError("metadata feature_names must be a non-empty list of names")
        overrides = settings.get("overrides")
        det = cls(tuple(names), min_frauds=int(settings.get("min_frauds", 20)),
                  n_estimators=int(settings.get("n_estimators", 300)), max_samples=int(settings.get("max_samples", 1024)),
                  random_state=int(settings.get("random_state", 0)),
                  warm_history=int(settings.get("warm_history", 0)),
                  overrides={k: (tuple(v) if v is not None else None) for k, v in overrides.items()} if overrides else None)
        a = parts.arrays
        det.columns_ = _int_vector(a, "columns")
        det.directions_ = _int_vector(a, "directions")
        det.weights_ = np.asarray(_get(a, "weights"), dtype=np.float64)
        k = det.columns_.size
        if np.unique(det.columns_).size != k or (k and (det.columns_.min() < 0 or det.columns_.max() >= len(names))):
            raise ValueError(f"columns must be distinct feature indices below {len(names)}")
        if det.directions_.shape != (k,) or not np.isin(det.directions_, (0, 1, 2)).all():
            raise ValueError("directions must hold one code (0 up, 1 down, 2 rare) per used feature")
        if det.weights_.shape != (k,) or not np.isfinite(det.weights_).all() or (det.weights_ < 0).any():
            raise ValueError("weights must be finite, non-negative, one per used feature")
        det.tables_ = [_rare_table(a, f"t{j}_") if d == 2 else _tail_table(a, f"t{j}_")
                       for j, d in enumerate(det.directions_)]
        det.calibration_ = _tail_table(a, "cal_")
        mode = meta.get("mode")
        if mode not in MODES:
            raise ValueError(f"metadata mode must be one of {MODES}, got {mode!r}")
        det.mode_ = mode
        forest = {name[len("forest_"):]: v for name, v in a.items() if name.startswith("forest_")}
        if (mode == "forest") != bool(forest):
            raise ValueError(f"a {mode!r} evidence detector {'needs' if mode == 'forest' else 'has no'} forest arrays")
        det.forest_ = CompiledForest.from_arrays(forest) if forest else None
        if det.forest_ is not None and det.forest_.n_features != max(k, 1):
            raise ValueError(f"the forest expects {det.forest_.n_features} evidence columns, the tables give {k}")
        labels = meta.get("labels")
        dropped = meta.get("dropped")
        if not isinstance(labels, dict) or not isinstance(dropped, dict):
            raise ValueError("metadata needs 'labels' and 'dropped'")
        det.labels_ = {"given": bool(labels.get("given")), "frauds": int(labels.get("frauds", 0)),
                       "used": bool(labels.get("used"))}
        det.dropped_ = {str(n): str(why) for n, why in dropped.items()}
        fitted_on = meta.get("fitted_on")  # absent in bundles made before it was recorded: every row
        det.fitted_on_ = ({"rows": int(fitted_on["rows"]), "of": int(fitted_on["of"]), "why": str(fitted_on["why"])}
                          if isinstance(fitted_on, dict) else {"rows": -1, "of": -1, "why": "not recorded"})
        det._prepare()
        return det


# ---- validation of stored tables (a damaged bundle is refused with the array's name)


def _get(a: Mapping[str, np.ndarray], name: str) -> np.ndarray:
    if name not in a:
        raise ValueError(f"array {name!r} is missing")
    return np.asarray(a[name])


def _int_vector(a: Mapping[str, np.ndarray], name: str) -> np.ndarray:
    value = _get(a, name)
    if value.ndim != 1 or value.dtype.kind not in "iu":
        raise ValueError(f"{name} must be a 1-d integer array")
    return value.astype(np.int64)


def _finite_increasing(a: Mapping[str, np.ndarray], name: str, strict: bool = True) -> np.ndarray:
    value = np.asarray(_get(a, name), dtype=np.float64)
    steps = np.diff(value)
    if value.ndim != 1 or value.size == 0 or not np.isfinite(value).all() or (steps <= 0 if strict else steps < 0).any():
        raise ValueError(f"{name} must be a non-empty, finite, increasing 1-d array")
    return value


def _tail_table(a: Mapping[str, np.ndarray], prefix: str) -> TailTable:
    knots = _finite_increasing(a, f"{prefix}knots")
    log_tail = np.asarray(_get(a, f"{prefix}log_tail"), dtype=np.float64)
    if log_tail.shape != knots.shape or not np.isfinite(log_tail).all() or (log_tail > 0).any() or (np.diff(log_tail) > 0).any():
        raise ValueError(f"{prefix}log_tail must be finite, <= 0 and decreasing, one per knot")
    tail = np.asarray(_get(a, f"{prefix}tail"), dtype=np.float64)
    if tail.shape != (5,) or np.isnan(tail).any() or not tail[0] > 0 or not tail[3] > 0 or not np.isfinite(tail[0]):
        raise ValueError(f"{prefix}tail must hold spread > 0, tail start, log p, scale > 0, interpolate")
    return TailTable.from_arrays({f"{prefix}knots": knots, f"{prefix}log_tail": log_tail, f"{prefix}tail": tail}, prefix)


def _rare_table(a: Mapping[str, np.ndarray], prefix: str) -> RareTable:
    edges = _finite_increasing(a, f"{prefix}edges")
    rare = np.asarray(_get(a, f"{prefix}rare"), dtype=np.float64)
    if edges.size < 2 or rare.shape != edges.shape or not np.isfinite(rare).all() or (rare < 0).any():
        raise ValueError(f"{prefix}rare must be finite, >= 0, one per bin plus the outside bin")
    return RareTable(edges, rare)


# ---- the single-row path: the numpy scoring of one value, reproduced with lists and bisect


def _one_value(table: TailTable | RareTable, direction: int) -> Callable[[float], float]:
    """A function of one float equal to the table's numpy scoring of that value (bit for bit where numpy allows)."""
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
        if x > end:  # past every training value: keeps growing, one nat per spread (numpy's order of sums)
            return top + (x - end) / spread if interpolate else top + log2 + (x - end) / spread
        idx = bisect_left(knots, x)
        if not interpolate or x == knots[idx]:
            return neg[idx]
        if idx == 0:  # below the smallest training value: np.interp's left value
            return neg[0]
        # np.interp's arithmetic, in its order: slope * (x - x_j) + y_j
        lo = idx - 1
        slope = (neg[idx] - neg[lo]) / (knots[idx] - knots[lo])
        value = slope * (x - knots[lo]) + neg[lo]
        return value if not isnan(value) else slope * (x - knots[idx]) + neg[idx]
    return upper
