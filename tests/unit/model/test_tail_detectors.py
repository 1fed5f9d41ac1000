"""The issue-10 candidate detectors: tail tables are exact, evidence is one-sided, scores are calibrated."""

from __future__ import annotations

import numpy as np
import pytest

from fraudstream.model.detectors.group_forest import (
    EvidenceForestDetector,
    GroupForestDetector,
    OneSidedForestDetector,
    one_sided,
)
from fraudstream.model.detectors.tail_table import RareTable, TailTable
from fraudstream.model.detectors.tails import TailEvidenceDetector
from fraudstream.model.features.step import FEATURE_NAMES, INDEX


def _features(n: int = 4_000, seed: int = 0) -> np.ndarray:
    """Plausible feature rows: every column varies, a few columns are binary, one is constant."""
    rng = np.random.default_rng(seed)
    X = rng.gamma(2.0, 1.0, (n, len(FEATURE_NAMES)))
    X[:, INDEX["hour_of_day"]] = rng.normal(13, 3, n).clip(0, 23.99)
    for name in ("new_merchant", "new_category", "is_online", "is_atm"):
        X[:, INDEX[name]] = rng.random(n) < 0.2
    X[:, INDEX["new_country"]] = 0.0  # constant in training: must carry no evidence
    return X


def test_tail_table_is_exact_at_training_values() -> None:
    rng = np.random.default_rng(1)
    x = np.round(rng.exponential(3.0, 2_000), 1)  # ties on purpose
    table = TailTable.fit(x)
    probes = np.unique(x)[:: max(1, np.unique(x).size // 50)]
    want = -np.log(((x[None, :] >= probes[:, None]).sum(axis=1) + 1.0) / (x.size + 1.0))
    got = table.neg_log_tail(probes)
    # Exact at the knots; between knots the next knot's share is used, so never more evidence than exact.
    assert np.all(got >= want - 1e-12)
    knots = np.isin(probes, table.knots)
    assert knots.any()
    np.testing.assert_allclose(got[knots], want[knots], atol=1e-12)


def test_tail_table_is_monotone_and_ranks_past_the_training_range() -> None:
    table = TailTable.fit(np.arange(100.0))
    grid = np.linspace(-10, 500, 1_000)
    ev = table.neg_log_tail(grid)
    assert np.all(np.diff(ev) >= 0)
    assert table.neg_log_tail(np.array([300.0]))[0] > table.neg_log_tail(np.array([200.0]))[0]
    assert table.neg_log_tail(np.array([-5.0]))[0] == 0.0


def test_tail_table_round_trips_through_arrays() -> None:
    table = TailTable.fit(np.random.default_rng(2).normal(size=500))
    again = TailTable.from_arrays(table.to_arrays("f3_"), "f3_")
    probe = np.linspace(-4, 4, 33)
    np.testing.assert_array_equal(again.neg_log_tail(probe), table.neg_log_tail(probe))


def test_rare_table_scores_empty_hours_above_busy_ones() -> None:
    hours = np.random.default_rng(3).normal(13, 2, 5_000).clip(0, 23.99)
    table = RareTable.fit(hours)
    night, noon = table.score(np.array([3.0, 13.0]))
    assert night > noon


@pytest.mark.parametrize("combine", ["truncated", "fisher", "features", "max"])
def test_evidence_only_counts_in_the_fraud_direction(combine: str) -> None:
    X = _features()
    det = TailEvidenceDetector(combine=combine).fit(X)
    row = np.median(X, axis=0)
    base = det.score_one(row)
    smaller = row.copy()
    smaller[INDEX["amount_ratio_30d_log"]] = X[:, INDEX["amount_ratio_30d_log"]].min() - 5  # much smaller: not evidence
    slower = row.copy()
    slower[INDEX["seconds_since_prev_log"]] = 1e3  # a long gap: not evidence
    larger = row.copy()
    larger[INDEX["amount_ratio_30d_log"]] = X[:, INDEX["amount_ratio_30d_log"]].max() + 5
    assert det.score_one(smaller) <= base
    assert det.score_one(slower) <= base
    assert det.score_one(larger) > base


def test_constant_features_carry_no_evidence_and_are_listed() -> None:
    X = _features()
    det = TailEvidenceDetector().fit(X)
    assert det.dropped_ == {"new_country": "constant in training"}
    row = np.median(X, axis=0)
    moved = row.copy()
    moved[INDEX["new_country"]] = 1.0
    assert det.score_one(moved) == det.score_one(row)


@pytest.mark.parametrize("make", [TailEvidenceDetector, EvidenceForestDetector, OneSidedForestDetector,
                                  GroupForestDetector])
def test_scores_are_calibrated_to_the_training_tail(make: type) -> None:
    """A score of 2 means the top 1 % of training rows, whatever the detector or the data."""
    X = _features(6_000)
    det = make().fit(X)
    share = float(np.mean(det.score_samples(X) >= 2.0))
    assert 0.005 <= share <= 0.0125


def test_one_sided_transform_clips_the_harmless_side() -> None:
    X = np.array([[1.0, 1.0, 1.0], [5.0, 5.0, 5.0], [9.0, 9.0, 9.0]])
    Z = one_sided(X, [0, 1, 2], np.array([5.0, 5.0, 5.0]), ["up", "down", "rare"])
    np.testing.assert_array_equal(Z, [[5.0, -1.0, 1.0], [5.0, -5.0, 5.0], [9.0, -5.0, 9.0]])


def test_reasons_name_the_groups_that_fired() -> None:
    X = _features()
    det = TailEvidenceDetector().fit(X)
    row = np.median(X, axis=0)
    row[INDEX["amount_log"]] = X[:, INDEX["amount_log"]].max() * 3
    row[INDEX["card_count_1h"]] = X[:, INDEX["card_count_1h"]].max() * 3
    assert set(det.reasons(row)) == {"amount", "velocity"}
    assert det.reasons(np.median(X, axis=0)) == []


@pytest.mark.parametrize("labelled", [False, True])
def test_evidence_detector_serves_from_plain_arrays_to_1e9(labelled: bool) -> None:
    """What a bundle stores (numpy arrays only) scores exactly like the fitted detector."""
    from fraudstream.model.detectors.evidence import EvidenceDetector

    X = _features(3_000)
    y = None
    if labelled:
        y = (X[:, INDEX["amount_log"]] > np.quantile(X[:, INDEX["amount_log"]], 0.98)).astype(int)
    det = EvidenceDetector(n_estimators=30, max_samples=256).fit(X, y)
    assert det.mode_ == ("weighted" if labelled else "forest")
    arrays = det.to_arrays()
    assert all(isinstance(v, np.ndarray) and v.dtype != object for v in arrays.values())
    served = EvidenceDetector.from_arrays(arrays)
    probe = np.vstack([X[:200], X[:5] * 4.0])
    np.testing.assert_allclose(served.score_samples(probe), det.score_samples(probe), rtol=0, atol=1e-9)


def test_evidence_detector_learns_which_feature_counts_and_never_flips_a_direction() -> None:
    from fraudstream.model.detectors.evidence import EvidenceDetector

    X = _features(4_000)
    y = np.zeros(len(X), dtype=int)
    fraud = np.random.default_rng(5).choice(len(X), 60, replace=False)
    X[fraud, INDEX["amount_ratio_30d_log"]] += 8.0  # frauds: much larger than the card's usual amount
    y[fraud] = 1
    det = EvidenceDetector().fit(X, y)
    assert det.mode_ == "weighted"
    assert np.all(det.weights_ >= 0)
    weight = dict(zip((FEATURE_NAMES[i] for i in det.columns_), det.weights_))
    assert weight["amount_ratio_30d_log"] == max(weight.values())
    assert det.reasons(X[fraud[0]])[0] == "amount_ratio_30d_log"


def test_few_labels_fall_back_to_the_evidence_forest() -> None:
    from fraudstream.model.detectors.evidence import EvidenceDetector

    X = _features(2_000)
    y = np.zeros(len(X), dtype=int)
    y[:5] = 1  # too few confirmed frauds to weigh 19 features
    assert EvidenceDetector(n_estimators=10, max_samples=128).fit(X, y).mode_ == "forest"


@pytest.mark.parametrize("labelled", [False, True])
def test_evidence_detector_single_row_path_equals_the_batch_path(labelled: bool) -> None:
    from fraudstream.model.detectors.evidence import EvidenceDetector

    X = _features(3_000)
    y = (X[:, INDEX["amount_log"]] > np.quantile(X[:, INDEX["amount_log"]], 0.98)).astype(int) if labelled else None
    det = EvidenceDetector(n_estimators=30, max_samples=256).fit(X, y)
    probe = np.vstack([X[:300], X[:20] * 5.0, X[:20] * -1.0, np.median(X, axis=0)])
    probe[-1, INDEX["hour_of_day"]] = X[:, INDEX["hour_of_day"]].max()  # the histogram's last edge
    batch = det.score_samples(probe)
    single = np.array([det.score_one(row.tolist()) for row in probe])
    np.testing.assert_allclose(single, batch, rtol=0, atol=1e-9)


def test_an_interpolated_table_keeps_near_equal_scores_in_order() -> None:
    """Calibration must not tie the scores between two knots (that would blur the ranking)."""
    scores = np.random.default_rng(4).normal(size=20_000)
    step, smooth = TailTable.fit(scores), TailTable.fit(scores, interpolate=True)
    grid = np.linspace(scores.min(), scores.max() + 1.0, 5_000)
    assert np.unique(step.neg_log_tail(grid[grid <= scores.max()])).size < 200
    assert np.all(np.diff(smooth.neg_log_tail(grid)) > 0)
    np.testing.assert_allclose(smooth.neg_log_tail(smooth.knots), step.neg_log_tail(smooth.knots), atol=1e-12)
