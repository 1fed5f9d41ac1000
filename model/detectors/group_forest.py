"""Isolation forests that only see the fraud side of each feature, globally or one per feature group.

The one-sided transform clips each feature at its training median on the side that is not
evidence (smaller amounts, longer gaps, nearer places become "typical"), so a forest can only
isolate rows for being unusual in the direction fraud takes; ``rare`` features (hour of day) stay
two-sided. ``GroupForestDetector`` fits one forest per group (amount, velocity, geography, ...)
and combines their calibrated tail probabilities with the same truncated sum as
:class:`~fraudstream.model.detectors.tails.TailEvidenceDetector`; each forest is the project's
compiled forest, so serving needs no scikit-learn.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from fraudstream.model.detectors.directions import GROUPS, Direction, evidence_for
from fraudstream.model.detectors.isolation_forest import IsolationForestDetector
from fraudstream.model.detectors.tail_table import TailTable
from fraudstream.model.features.step import FEATURE_NAMES

LN10 = np.log(10.0)


def one_sided(X: np.ndarray, columns: Sequence[int], medians: np.ndarray, directions: Sequence[Direction]) -> np.ndarray:
    """Columns of ``X`` with their non-evidence side clipped at the training median (down: negated first)."""
    out = np.empty((X.shape[0], len(columns)))
    for j, (i, med, d) in enumerate(zip(columns, medians, directions)):
        col = X[:, i]
        out[:, j] = np.maximum(col, med) if d == "up" else (np.maximum(-col, -med) if d == "down" else col)
    return out


class OneSidedForestDetector:
    """One forest over the one-sided evidence features; score calibrated to -log10 training tail."""

    def __init__(self, feature_names: tuple[str, ...] = FEATURE_NAMES, *, n_estimators: int = 100,
                 max_samples: int = 256, random_state: int = 0, one_sided: bool = True,
                 drop_constant: bool = True) -> None:
        self.feature_names = feature_names
        self.n_estimators = n_estimators
        self.max_samples = max_samples
        self.random_state = random_state
        self.one_sided = one_sided
        self.drop_constant = drop_constant

    def _columns(self, X: np.ndarray) -> tuple[list[int], list[Direction]]:
        ev = evidence_for(self.feature_names)
        cols = [i for i in ev if not self.drop_constant or np.ptp(X[:, i]) > 0]
        return cols, [ev[i][1] if self.one_sided else "rare" for i in cols]

    def fit(self, X: np.ndarray, y: np.ndarray | None = None) -> OneSidedForestDetector:
        X = np.asarray(X, dtype=np.float64)
        self.columns_, self.directions_ = self._columns(X)
        self.medians_ = np.median(X[:, self.columns_], axis=0)
        Z = one_sided(X, self.columns_, self.medians_, self.directions_)
        self.forest_ = IsolationForestDetector(self.n_estimators, self.max_samples, self.random_state).fit(Z)
        self.calibration_ = TailTable.fit(self.forest_.score_many(Z), interpolate=True)
        return self

    def score_samples(self, X: np.ndarray) -> np.ndarray:
        Z = one_sided(np.asarray(X, dtype=np.float64), self.columns_, self.medians_, self.directions_)
        return self.calibration_.neg_log_tail(self.forest_.score_many(Z)) / LN10


class GroupForestDetector:
    """A one-sided forest per feature group; group tail probabilities combined by a truncated sum."""

    def __init__(self, feature_names: tuple[str, ...] = FEATURE_NAMES, *, tau: float = 0.05,
                 n_estimators: int = 100, max_samples: int = 256, random_state: int = 0) -> None:
        self.feature_names = feature_names
        self.tau = tau
        self.n_estimators = n_estimators
        self.max_samples = max_samples
        self.random_state = random_state

    def fit(self, X: np.ndarray, y: np.ndarray | None = None) -> GroupForestDetector:
        X = np.asarray(X, dtype=np.float64)
        ev = evidence_for(self.feature_names)
        self.parts_: dict[str, tuple[list[int], list[Direction], np.ndarray, IsolationForestDetector, TailTable]] = {}
        for g in GROUPS:
            cols = [i for i, (group, _) in ev.items() if group == g and np.ptp(X[:, i]) > 0]
            if not cols:
                continue
            dirs = [ev[i][1] for i in cols]
            med = np.median(X[:, cols], axis=0)
            Z = one_sided(X, cols, med, dirs)
            forest = IsolationForestDetector(self.n_estimators, self.max_samples, self.random_state).fit(Z)
            self.parts_[g] = (cols, dirs, med, forest, TailTable.fit(forest.score_many(Z), interpolate=True))
        self.calibration_ = TailTable.fit(self.raw_scores(X), interpolate=True)
        return self

    def group_evidence(self, X: np.ndarray) -> dict[str, np.ndarray]:
        X = np.asarray(X, dtype=np.float64)
        return {g: table.neg_log_tail(forest.score_many(one_sided(X, cols, med, dirs)))
                for g, (cols, dirs, med, forest, table) in self.parts_.items()}

    def raw_scores(self, X: np.ndarray) -> np.ndarray:
        E = np.vstack(list(self.group_evidence(X).values()))
        return np.clip(E + np.log(self.tau), 0.0, None).sum(axis=0)

    def score_samples(self, X: np.ndarray) -> np.ndarray:
        return self.calibration_.neg_log_tail(self.raw_scores(X)) / LN10


class EvidenceForestDetector:
    """A forest over the features' one-sided evidence (-log training tail), so every tail is on one scale."""

    def __init__(self, feature_names: tuple[str, ...] = FEATURE_NAMES, *, n_estimators: int = 100,
                 max_samples: int = 256, random_state: int = 0,
                 overrides: dict[str, tuple[str, Direction] | None] | None = None, by_group: bool = False,
                 tail_from: float | None = None) -> None:
        self.feature_names = feature_names
        self.n_estimators = n_estimators
        self.max_samples = max_samples
        self.random_state = random_state
        self.overrides = overrides
        self.tail_from = tail_from
        self.by_group = by_group  # one column per group (its strongest feature), so no question outweighs another

    def fit(self, X: np.ndarray, y: np.ndarray | None = None) -> EvidenceForestDetector:
        from fraudstream.model.detectors.tails import TailEvidenceDetector

        self.evidence_ = TailEvidenceDetector(self.feature_names, overrides=self.overrides, tail_from=self.tail_from).fit(X)
        E = self._evidence(X)
        self.forest_ = IsolationForestDetector(self.n_estimators, self.max_samples, self.random_state).fit(E)
        self.calibration_ = TailTable.fit(self.forest_.score_many(E), interpolate=True)
        return self

    def _evidence(self, X: np.ndarray) -> np.ndarray:
        if self.by_group:
            return np.column_stack(list(self.evidence_.group_evidence(X).values()))
        return np.column_stack(list(self.evidence_.feature_evidence(X).values()))

    def score_samples(self, X: np.ndarray) -> np.ndarray:
        return self.calibration_.neg_log_tail(self.forest_.score_many(self._evidence(X))) / LN10


class EvidenceGroupForestsDetector:
    """A forest per feature group over that group's evidence; the groups' calibrated tails summed (Fisher).

    Each question (amount, velocity, geography, novelty, time, merchant) is isolated on its own, so a
    strong signal in one group is not drowned by the others' noise; optionally a forest over all the
    evidence (``with_all``) or over the transaction's basics (``with_basics``: amount and hour) joins the sum.
    """

    def __init__(self, feature_names: tuple[str, ...] = FEATURE_NAMES, *, n_estimators: int = 100,
                 max_samples: int = 256, random_state: int = 0, combine: str = "fisher",
                 with_all: bool = False, groups: bool = True, with_basics: bool = False) -> None:
        self.feature_names = feature_names
        self.n_estimators = n_estimators
        self.max_samples = max_samples
        self.random_state = random_state
        self.combine = combine  # fisher (sum of -log tails) | max
        self.with_all = with_all
        self.groups = groups
        self.with_basics = with_basics

    def fit(self, X: np.ndarray, y: np.ndarray | None = None) -> EvidenceGroupForestsDetector:
        from fraudstream.model.detectors.tails import TailEvidenceDetector

        self.evidence_ = TailEvidenceDetector(self.feature_names).fit(X)
        E = np.column_stack(list(self.evidence_.feature_evidence(X).values()))
        names = [self.feature_names[i] for i in self.evidence_.tables_]
        sets: dict[str, list[int]] = {}
        if self.groups:
            for j, i in enumerate(self.evidence_.tables_):
                sets.setdefault(self.evidence_.groups_[i], []).append(j)
        if self.with_all:
            sets["all"] = list(range(len(names)))
        if self.with_basics:
            sets["basics"] = [j for j, n in enumerate(names) if n in ("amount_log", "amount_ratio_30d_log", "hour_of_day")]
        self.parts_ = {}
        for g, cols in sets.items():
            if not cols:
                continue
            big = g == "all"
            forest = IsolationForestDetector(300 if big else self.n_estimators, 1024 if big else self.max_samples,
                                             self.random_state).fit(E[:, cols])
            self.parts_[g] = (cols, forest, TailTable.fit(forest.score_many(E[:, cols]), interpolate=True))
        self.calibration_ = TailTable.fit(self._raw(E), interpolate=True)
        return self

    def _raw(self, E: np.ndarray) -> np.ndarray:
        tails = [table.neg_log_tail(forest.score_many(E[:, cols])) for cols, forest, table in self.parts_.values()]
        return np.sum(tails, axis=0) if self.combine == "fisher" else np.max(tails, axis=0)

    def score_samples(self, X: np.ndarray) -> np.ndarray:
        E = np.column_stack(list(self.evidence_.feature_evidence(X).values()))
        return self.calibration_.neg_log_tail(self._raw(E)) / LN10


class TruncatedEvidenceForestDetector(EvidenceForestDetector):
    """The evidence forest on evidence past a tail probability ``tau`` only (below it: 0), so the bulk cannot isolate."""

    def __init__(self, feature_names: tuple[str, ...] = FEATURE_NAMES, *, tau: float = 0.05, **kw: object) -> None:
        super().__init__(feature_names, **kw)  # type: ignore[arg-type]
        self.tau = tau

    def _evidence(self, X: np.ndarray) -> np.ndarray:
        return np.clip(super()._evidence(X) + np.log(self.tau), 0.0, None)
