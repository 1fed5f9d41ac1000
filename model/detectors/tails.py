"""One-sided tail evidence per feature, combined by group: a detector one strong signal cannot be drowned in.

For each feature with a known fraud direction (see :mod:`directions`), a transaction's evidence
is -log of the share of training transactions at least as extreme *in that direction* (an
empirical tail probability, ECOD-style but one-sided). Features answering the same question
(amount, velocity, geography, novelty, time, merchant) are correlated, so a group's evidence is
its strongest feature's. Groups are combined by a truncated sum: only groups whose tail
probability is below ``tau`` count, by how far below (Zaykin's truncated product), so groups
with nothing to say add nothing, and the groups that fired are the reasons.

The raw sum is finally calibrated to a training-tail probability: the score is -log10 of the
share of training transactions scoring at least as high, so an alert budget of 10 per 1,000
is a score of 2 after every retrain. Serving is numpy only (tables of knots).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from fraudstream.model.detectors.directions import GROUPS, Direction, evidence_for
from fraudstream.model.detectors.tail_table import RareTable, TailTable
from fraudstream.model.features.step import FEATURE_NAMES

LN10 = np.log(10.0)


class TailEvidenceDetector:
    """Per-feature one-sided tail probabilities -> per-group maxima -> truncated sum -> calibrated score."""

    def __init__(self, feature_names: tuple[str, ...] = FEATURE_NAMES, *, tau: float = 0.05,
                 combine: str = "truncated", min_informative: float = 0.001,
                 overrides: dict[str, tuple[str, Direction] | None] | None = None,
                 correct_groups: bool = True, tail_from: float | None = None, weigh_by: str = "lift") -> None:
        self.feature_names = feature_names
        self.tau = tau
        self.combine = combine  # truncated | fisher | max (over groups) | features (sum over features)
        self.min_informative = min_informative
        self.overrides = overrides
        self.weigh_by = weigh_by  # lift | logistic: how labelled frauds set the weights
        self.tail_from = tail_from  # e.g. 0.95: exponential tails past that quantile (distance counts)
        self.correct_groups = correct_groups  # a group's strongest of k features: p_min * k (Bonferroni)

    def fit(self, X: np.ndarray, y: np.ndarray | None = None) -> TailEvidenceDetector:
        """Learn each evidence feature's tail table; skip features constant in training.

        ``y`` is used only by ``combine="weighted"``: with enough confirmed frauds, each feature's
        evidence gets a non-negative weight learned from them (a direction never flips).
        """
        X = np.asarray(X, dtype=np.float64)
        self.tables_: dict[int, TailTable | RareTable] = {}
        self.groups_: dict[int, str] = {}
        self.dropped_: dict[str, str] = {}
        for i, (group, direction) in evidence_for(self.feature_names, self.overrides).items():
            col = X[:, i]
            lo, hi = np.quantile(col, [self.min_informative, 1.0 - self.min_informative])
            if lo == hi and (direction == "rare" or not _has_tail(col, direction)):
                self.dropped_[self.feature_names[i]] = "constant in training"
                continue
            if direction == "up":
                self.tables_[i] = TailTable.fit(col, self.tail_from)
            elif direction == "down":
                self.tables_[i] = TailTable.fit(-col, self.tail_from)
            else:
                self.tables_[i] = RareTable.fit(col)
            self.groups_[i] = group
        self.directions_ = {i: evidence_for(self.feature_names, self.overrides)[i][1] for i in self.tables_}
        self.weights_ = np.ones(len(self.tables_))
        if self.combine == "weighted":
            self.weights_ = _learn_weights(self.feature_evidence(X), y, self.weigh_by)
        raw = self.raw_scores(X)
        self.calibration_ = TailTable.fit(raw, interpolate=True)
        return self

    def feature_evidence(self, X: np.ndarray) -> dict[int, np.ndarray]:
        """Column index -> evidence in nats (-log tail probability) of each row."""
        X = np.asarray(X, dtype=np.float64)
        out = {}
        for i, table in self.tables_.items():
            d = self.directions_[i]
            col = X[:, i]
            out[i] = table.score(col) if d == "rare" else table.neg_log_tail(-col if d == "down" else col)  # type: ignore[union-attr]
        return out

    def group_evidence(self, X: np.ndarray) -> dict[str, np.ndarray]:
        """Group -> the strongest evidence among its features, row by row."""
        per = self.feature_evidence(X)
        groups: dict[str, np.ndarray] = {}
        sizes: dict[str, int] = {}
        for i, e in per.items():
            g = self.groups_[i]
            groups[g] = np.maximum(groups[g], e) if g in groups else e
            sizes[g] = sizes.get(g, 0) + 1
        if self.correct_groups:
            groups = {g: np.clip(e - np.log(sizes[g]), 0.0, None) for g, e in groups.items()}
        return {g: groups[g] for g in GROUPS if g in groups}

    def raw_scores(self, X: np.ndarray) -> np.ndarray:
        groups = list(self.group_evidence(X).values())
        if not groups:
            return np.zeros(len(X))
        E = np.vstack(groups)
        if self.combine in ("features", "weighted"):  # one-sided ECOD: every feature's evidence adds
            E = np.vstack(list(self.feature_evidence(X).values()))
            return self.weights_ @ E
        if self.combine == "max":
            return E.max(axis=0)
        if self.combine == "fisher":
            return E.sum(axis=0)
        return np.clip(E + np.log(self.tau), 0.0, None).sum(axis=0)

    def score_samples(self, X: np.ndarray) -> np.ndarray:
        """-log10 of the training share scoring at least as high (2.0 = top 1 % of training)."""
        return self.calibration_.neg_log_tail(self.raw_scores(X)) / LN10

    score_many = score_samples

    def score_one(self, x: Sequence[float]) -> float:
        return float(self.score_samples(np.asarray(x, dtype=np.float64)[None, :])[0])

    def reasons(self, x: Sequence[float], top: int = 3) -> list[str]:
        """The groups that fired for one row, strongest first (evidence above -log tau)."""
        ev = self.group_evidence(np.asarray(x, dtype=np.float64)[None, :])
        fired = sorted(((float(v[0]), g) for g, v in ev.items() if v[0] > -np.log(self.tau)), reverse=True)
        return [g for _, g in fired[:top]]


MIN_FRAUDS_TO_WEIGH = 20
LIFT_TAIL = 0.05  # a feature 'fires' when its training tail probability is below this


def _learn_weights(evidence: dict[int, np.ndarray], y: np.ndarray | None, by: str = "lift") -> np.ndarray:
    """Non-negative per-feature weights from labelled frauds; equal weights without enough of them.

    ``lift``: log of how much more often the feature fires (tail probability < 5 %) on confirmed
    frauds than on the other rows, floored at 0: a feature that fires no more on fraud weighs nothing.
    """
    n = len(evidence)
    if y is None or int(np.sum(y)) < MIN_FRAUDS_TO_WEIGH:
        return np.ones(n)
    E = np.column_stack(list(evidence.values()))
    fraud = np.asarray(y) == 1
    if by == "lift":
        fires = E > -np.log(LIFT_TAIL)
        # Shrink both rates toward the overall firing rate (one pseudo-row each), so a feature
        # that fires on almost nothing gets no weight from the smoothing alone.
        overall = (fires.sum(axis=0) + 1.0) / (fires.shape[0] + 2.0)
        on_fraud = (fires[fraud].sum(axis=0) + overall) / (fraud.sum() + 1.0)
        on_rest = (fires[~fraud].sum(axis=0) + overall) / ((~fraud).sum() + 1.0)
        w = np.clip(np.log(on_fraud / on_rest), 0.0, None)
        return w if w.sum() > 0 else np.ones(n)
    return _non_negative_logistic(E, fraud)


def _non_negative_logistic(E: np.ndarray, fraud: np.ndarray, l2: float = 1e-3, iterations: int = 800) -> np.ndarray:
    """Class-balanced logistic regression with every weight >= 0 (a fraud direction never flips).

    Accelerated projected gradient (FISTA) in numpy: a handful of weights, so no solver library.
    """
    scale = E.std(axis=0) + 1e-9
    Z = np.column_stack([E / scale, np.ones(len(E))])  # last column: the intercept, left free
    sample_w = np.where(fraud, 0.5 / fraud.sum(), 0.5 / (~fraud).sum())
    target = fraud.astype(np.float64)
    n = E.shape[1]
    ridge = np.r_[np.full(n, 2.0 * l2), 0.0]
    lipschitz = 0.25 * float(np.linalg.eigvalsh((Z * sample_w[:, None]).T @ Z)[-1]) + ridge.max()
    step = 1.0 / lipschitz
    params = np.r_[np.full(n, 0.1), 0.0]
    momentum, t = params.copy(), 1.0
    for _ in range(iterations):
        z = Z @ momentum
        gradient = Z.T @ (sample_w * (0.5 * (1.0 + np.tanh(0.5 * z)) - target)) + ridge * momentum
        new = momentum - step * gradient
        new[:n] = np.maximum(new[:n], 0.0)
        t_next = 0.5 * (1.0 + np.sqrt(1.0 + 4.0 * t * t))
        momentum = new + (t - 1.0) / t_next * (new - params)
        params, t = new, t_next
    w = params[:n] / scale
    return w / w.sum() * n if w.sum() > 0 else np.ones(n)


def _has_tail(col: np.ndarray, direction: Direction) -> bool:
    """A nearly constant column still carries evidence if its rare values lie in the fraud direction."""
    med = np.median(col)
    return bool((col > med).any()) if direction == "up" else bool((col < med).any())
