"""The evidence detector as the product serves it: its bundle parts say how it was trained, damaged parts are
refused, the single-row path is numpy's arithmetic, and train_bundle uses it (with labels from 20 frauds)."""

from __future__ import annotations

import numpy as np
import pytest

from fraudstream.model.detectors.base import DetectorParts
from fraudstream.model.detectors.evidence import EvidenceDetector, _one_value, tail_share, unit_score
from fraudstream.model.detectors.tail_table import RareTable, TailTable
from fraudstream.model.features.step import FEATURE_NAMES, INDEX
from fraudstream.model.train import known_labels, train_bundle


def _features(n: int = 3_000, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    X = rng.gamma(2.0, 1.0, (n, len(FEATURE_NAMES)))
    X[:, INDEX["hour_of_day"]] = rng.normal(13, 3, n).clip(0, 23.99)
    X[:, INDEX["new_merchant"]] = rng.random(n) < 0.2
    X[:, INDEX["new_country"]] = 0.0  # a column the data does not have: constant in training
    return X


def _labelled(n: int = 3_000, frauds: int = 60) -> tuple[np.ndarray, np.ndarray]:
    X = _features(n)
    y = np.zeros(n, dtype=np.int64)
    idx = np.random.default_rng(5).choice(n, frauds, replace=False)
    X[idx, INDEX["amount_ratio_30d_log"]] += 8.0
    y[idx] = 1
    return X, y


def test_the_parts_say_how_the_detector_was_trained_and_which_features_it_left_out() -> None:
    X, y = _labelled()
    meta = EvidenceDetector(n_estimators=10, max_samples=128).fit(X, y).to_parts().metadata
    assert meta["mode"] == "weighted" and meta["labels"] == {"given": True, "frauds": 60, "used": True}
    assert meta["combined_by"] == "non-negative logistic weights from 60 confirmed frauds"
    assert set(meta["weights"]) == set(meta["used"]) and max(meta["weights"], key=meta["weights"].get) == "amount_ratio_30d_log"
    assert meta["used"]["seconds_since_prev_log"] == "smaller is suspicious"
    assert meta["dropped"]["new_country"] == "constant in training (always 0): missing from the data or never varies"
    assert meta["dropped"]["day_of_week"] == "no fraud direction: not evidence on its own"
    assert set(meta["used"]) | set(meta["dropped"]) == set(FEATURE_NAMES) and not set(meta["used"]) & set(meta["dropped"])

    few = EvidenceDetector(n_estimators=10, max_samples=128).fit(X, np.r_[np.ones(5), np.zeros(len(X) - 5)])
    meta = few.to_parts().metadata
    assert meta["mode"] == "forest" and meta["weights"] is None
    assert meta["labels"] == {"given": True, "frauds": 5, "used": False}
    assert "5 labelled frauds, fewer than the 20 needed" in meta["combined_by"]
    assert "no labels in training" in EvidenceDetector(n_estimators=10, max_samples=128).fit(X).to_parts().metadata["combined_by"]


def test_contributions_are_weight_times_evidence_and_only_on_the_fraud_side() -> None:
    X, y = _labelled()
    det = EvidenceDetector().fit(X, y)
    row = np.median(X, axis=0)
    row[INDEX["amount_ratio_30d_log"]] = X[:, INDEX["amount_ratio_30d_log"]].max() + 3
    row[INDEX["seconds_since_prev_log"]] = 1e3  # a long gap: the harmless side, no evidence
    got = det.feature_contributions(row)
    want = np.zeros(len(FEATURE_NAMES))
    want[det.columns_] = det.evidence(row[None, :])[0] * det.weights_
    np.testing.assert_array_equal(got, want)
    assert np.argmax(got) == INDEX["amount_ratio_30d_log"] and got[INDEX["seconds_since_prev_log"]] == 0.0


@pytest.mark.parametrize("interpolate", [False, True])
def test_the_single_row_table_lookup_is_numpys_arithmetic_bit_for_bit(interpolate: bool) -> None:
    rng = np.random.default_rng(7)
    values = np.round(rng.lognormal(1.0, 1.0, 5_000), 2)
    table = TailTable.fit(values, interpolate=interpolate)
    probes = np.r_[table.knots, rng.uniform(-1, values.max() * 2, 3_000), values[:500], -5.0, 1e300]
    for direction, sign in ((0, 1.0), (1, -1.0)):
        one = _one_value(table, direction)
        want = table.neg_log_tail(sign * probes)
        got = np.array([one(float(x)) for x in probes])
        np.testing.assert_array_equal(got, want)
    rare = RareTable.fit(rng.normal(13, 3, 2_000).clip(0, 23.99))
    one = _one_value(rare, 2)
    hours = np.r_[np.linspace(-1, 25, 500), rare.edges]
    np.testing.assert_array_equal([one(float(h)) for h in hours], rare.score(hours))


def test_served_scores_are_in_the_unit_interval_and_keep_the_calibrated_order() -> None:
    s = np.array([0.0, 0.5, 1.0, 2.0, 3.0, 40.0, 1e12])
    u = unit_score(s)
    assert np.all(np.diff(u) > 0) and u[0] == 0.0 and u[-1] < 1.0
    assert [round(tail_share(float(v)), 6) for v in u[1:5]] == [round(10 ** -x, 6) for x in s[1:5]]
    det = EvidenceDetector(n_estimators=10, max_samples=128).fit(_features())
    X = _features(500, seed=1)
    np.testing.assert_allclose(det.score_many(X), unit_score(det.neg_log10_tail(X)), rtol=0, atol=0)


def _parts(labelled: bool) -> DetectorParts:
    X, y = _labelled()
    return EvidenceDetector(n_estimators=10, max_samples=128).fit(X, y if labelled else None).to_parts()


@pytest.mark.parametrize(
    ("labelled", "damage", "message"),
    [
        (True, lambda a, m: a.update(columns=a["columns"] + 100), "columns must be distinct feature indices"),
        (True, lambda a, m: a.update(weights=-a["weights"]), "weights must be finite, non-negative"),
        (True, lambda a, m: a.update(t0_knots=a["t0_knots"][::-1].copy()), "t0_knots must be a non-empty, finite, increasing"),
        (True, lambda a, m: a.update(cal_log_tail=-a["cal_log_tail"]), "cal_log_tail must be finite, <= 0"),
        (True, lambda a, m: a.pop("cal_knots"), "array 'cal_knots' is missing"),
        (True, lambda a, m: m.update(mode="magic"), "mode must be one of"),
        (False, lambda a, m: m.update(mode="weighted"), "'weighted' evidence detector has no forest arrays"),
        (False, lambda a, m: [a.pop(k) for k in [k for k in a if k.startswith("forest_")]], "'forest' evidence detector needs forest"),
    ],
)
def test_damaged_parts_are_refused_with_the_array_named(labelled: bool, damage, message: str) -> None:
    parts = _parts(labelled)
    arrays, meta = dict(parts.arrays), dict(parts.metadata)
    damage(arrays, meta)
    with pytest.raises(ValueError, match=message):
        EvidenceDetector.from_parts(DetectorParts(parts.kind, arrays, meta))


def test_train_bundle_defaults_to_the_evidence_detector_and_weighs_it_from_20_labelled_frauds() -> None:
    X, y = _labelled(frauds=20)
    weighted = train_bundle(X, created_at="2026-01-01T00:00:00Z", labels=y)
    assert weighted.kind == "evidence" and weighted.metadata["detector"]["mode"] == "weighted"
    y19 = y.copy()
    y19[np.flatnonzero(y)[0]] = 0
    assert train_bundle(X, created_at="t", labels=y19).metadata["detector"]["mode"] == "forest"
    assert train_bundle(X, created_at="t").metadata["detector"]["labels"]["given"] is False


def test_a_partly_labelled_history_counts_as_unlabelled() -> None:
    class T:
        def __init__(self, is_fraud: int | None) -> None:
            self.is_fraud = is_fraud

    assert known_labels([T(0), T(1)]).tolist() == [0, 1]  # type: ignore[union-attr, arg-type]
    assert known_labels([T(0), T(None)]) is None  # type: ignore[arg-type]
    assert known_labels([]) is None


def test_a_fitted_detector_pickles_through_its_parts() -> None:
    import pickle

    X, y = _labelled()
    for labels in (y, None):
        det = EvidenceDetector(n_estimators=10, max_samples=128).fit(X, labels)
        again = pickle.loads(pickle.dumps(det))
        np.testing.assert_array_equal(again.score_many(X[:300]), det.score_many(X[:300]))
        assert again.score_one(X[0].tolist()) == det.score_one(X[0].tolist())


def test_without_labels_unusual_is_learned_from_cards_with_a_baseline() -> None:
    # A card's first transactions have no baseline: their ratios to "the card's usual" are noise. Learned
    # with them, a ratio far above every settled card's would look ordinary (issue 10: the label-free path).
    rng = np.random.default_rng(3)
    n = 4_000
    X = _features(n)
    cold = rng.random(n) < 0.3
    X[:, INDEX["card_history_log"]] = np.where(cold, 0.0, np.log1p(20.0))
    X[:, INDEX["amount_ratio_30d_log"]] = np.where(cold, rng.normal(0.0, 3.0, n), rng.normal(0.0, 0.3, n))
    det = EvidenceDetector(n_estimators=20, max_samples=256).fit(X)
    row = np.median(X[~cold], axis=0)
    row[INDEX["amount_ratio_30d_log"]] = 2.0  # beyond every settled card's ratio, ordinary among first transactions
    used = list(det.columns_).index(INDEX["amount_ratio_30d_log"])
    assert det.evidence(row[None, :])[0, used] > np.log(100.0)
    fitted_on = det.to_parts().metadata["fitted_on"]
    assert fitted_on["rows"] == int((~cold).sum()) and fitted_on["of"] == n
    # The calibration still counts every training row, so a budget keeps its meaning.
    assert abs(float(np.mean(det.neg_log10_tail(X) >= 2.0)) - 0.01) < 0.003
    # With labels, the weights learn from every row, the first transactions included.
    Xl, y = _labelled()
    assert EvidenceDetector(n_estimators=10, max_samples=128).fit(Xl, y).to_parts().metadata["fitted_on"]["rows"] == len(Xl)
