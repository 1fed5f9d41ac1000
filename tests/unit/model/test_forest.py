"""CompiledForest must score exactly like scikit-learn's IsolationForest, on both backends."""

import doctest
import pickle
import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.ensemble import IsolationForest

from fraudstream.model.detectors import forest as forest_module
from fraudstream.model.detectors import isolation_forest as iforest_module
from fraudstream.model.detectors.base import Detector
from fraudstream.model.detectors.forest import CompiledForest, average_path_length, c_available
from fraudstream.model.detectors.isolation_forest import IsolationForestDetector

BACKENDS = [
    pytest.param("c", marks=pytest.mark.skipif(not c_available(), reason="C kernel not built")),
    "numpy",
]
ATOL = 1e-9


def fit_sklearn(X, **kwargs):
    params = {"n_estimators": 25, "random_state": 0, "n_jobs": 1}
    params.update(kwargs)
    return IsolationForest(**params).fit(X)


def sklearn_scores(estimator, X):
    return -estimator.score_samples(X)


def threshold_rows(estimator, base_row):
    """Rows whose value sits exactly at, just below and just above split thresholds."""
    rows = []
    for tree, columns in zip(estimator.estimators_, estimator.estimators_features_):
        t = tree.tree_
        for node in np.flatnonzero(t.children_left != -1)[:10]:
            column = columns[t.feature[node]]
            threshold = t.threshold[node]
            as_float32 = np.float32(threshold)
            for value in (
                threshold,
                float(as_float32),
                float(np.nextafter(as_float32, np.float32(np.inf))),
                float(np.nextafter(as_float32, np.float32(-np.inf))),
                float(np.nextafter(threshold, np.inf)),
            ):
                row = base_row.copy()
                row[column] = value
                rows.append(row)
    return np.array(rows)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize(
    ("n_features", "max_samples", "max_features"),
    [(1, 256, 1.0), (2, 64, 1.0), (5, 256, 0.6), (17, 100, 1.0), (40, 256, 0.5), (3, 7, 1.0)],
)
def test_matches_sklearn_on_random_data(backend, n_features, max_samples, max_features):
    rng = np.random.default_rng(n_features)
    X = rng.normal(size=(600, n_features)) * rng.uniform(0.1, 100, size=n_features)
    estimator = fit_sklearn(X, max_samples=max_samples, max_features=max_features)
    forest = CompiledForest.from_sklearn(estimator, backend=backend)
    queries = np.vstack([X[:200], rng.normal(size=(200, n_features)) * 50])

    expected = sklearn_scores(estimator, queries)

    np.testing.assert_allclose(forest.score_many(queries), expected, rtol=0, atol=ATOL)
    singles = [forest.score_one(list(row)) for row in queries[:50]]
    np.testing.assert_allclose(singles, expected[:50], rtol=0, atol=ATOL)
    assert forest.backend == backend
    assert (forest.n_features, forest.n_trees, forest.max_samples) == (n_features, 25, estimator.max_samples_)


@pytest.mark.parametrize("backend", BACKENDS)
def test_matches_sklearn_at_exact_thresholds(backend):
    # sklearn compares float32(x) <= float64 threshold; a float64 comparison differs exactly here.
    rng = np.random.default_rng(1)
    X = rng.normal(size=(400, 4))
    estimator = fit_sklearn(X)
    forest = CompiledForest.from_sklearn(estimator, backend=backend)
    queries = threshold_rows(estimator, X[0])

    expected = sklearn_scores(estimator, queries)

    np.testing.assert_allclose(forest.score_many(queries), expected, rtol=0, atol=ATOL)
    np.testing.assert_allclose([forest.score_one(row) for row in queries], expected, rtol=0, atol=ATOL)


@pytest.mark.parametrize("backend", BACKENDS)
def test_matches_sklearn_with_ties_duplicates_and_extremes(backend):
    rng = np.random.default_rng(2)
    X = rng.integers(0, 3, size=(300, 6)).astype(float)
    X[:100] = X[0]  # many duplicated rows: leaves with several samples use c(n)
    estimator = fit_sklearn(X, max_samples=128)
    forest = CompiledForest.from_sklearn(estimator, backend=backend)
    extremes = np.array([[np.inf, -np.inf, 0, 1, 2, 3], [-1e30, 1e30, 0.5, 1.5, 2.5, -0.5], [1e39, -1e300, 0, 0, 0, 0]])
    queries = np.vstack([X, rng.integers(-1, 4, size=(100, 6)).astype(float), extremes])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # sklearn warns when 1e39 overflows float32
        expected = sklearn_scores(estimator, queries)

    with warnings.catch_warnings():
        warnings.simplefilter("error")  # we overflow to inf silently, like the C kernel
        np.testing.assert_allclose(forest.score_many(queries), expected, rtol=0, atol=ATOL)
        assert forest.score_one(queries[-1]) == pytest.approx(expected[-1], abs=ATOL)


@pytest.mark.parametrize("backend", BACKENDS)
def test_single_training_row_scores_like_sklearn(backend):
    # max_samples = 1 makes sklearn's denominator 0; it then reports 0.5 for every row.
    X = np.array([[1.0, 2.0]])
    estimator = fit_sklearn(X, max_samples=1)
    forest = CompiledForest.from_sklearn(estimator, backend=backend)
    queries = np.array([[1.0, 2.0], [5.0, -3.0]])

    np.testing.assert_allclose(forest.score_many(queries), sklearn_scores(estimator, queries), rtol=0, atol=ATOL)
    assert forest.score_one([0.0, 0.0]) == pytest.approx(0.5)


@settings(max_examples=25, deadline=None)
@given(
    seed=st.integers(0, 2**31 - 1),
    n_features=st.integers(1, 8),
    levels=st.sampled_from([2, 5, 1000]),
)
def test_matches_sklearn_property(seed, n_features, levels):
    rng = np.random.default_rng(seed)
    X = rng.integers(0, levels, size=(150, n_features)) / 7.0  # few levels -> many ties
    estimator = fit_sklearn(X, n_estimators=10, max_samples=64, random_state=seed)
    queries = np.vstack([X[:40], rng.integers(-1, levels + 1, size=(40, n_features)) / 7.0])
    expected = sklearn_scores(estimator, queries)
    for backend in ("c", "numpy") if c_available() else ("numpy",):
        forest = CompiledForest.from_sklearn(estimator, backend=backend)
        np.testing.assert_allclose(forest.score_many(queries), expected, rtol=0, atol=ATOL)


def test_c_kernel_is_built():
    # setup.py marks the extension optional; in a dev install a silent build failure is a bug.
    assert c_available()
    assert CompiledForest.from_arrays(hand_made_arrays()).backend == "c"


@pytest.mark.parametrize("backend", BACKENDS)
def test_score_one_accepts_lists_tuples_and_arrays(backend):
    forest = CompiledForest.from_arrays(hand_made_arrays(), backend=backend)
    row = [10.0, 1.0, 0.0]
    expected = forest.score_many(np.array([row]))[0]

    as_numbers = [np.array(row), np.array(row, dtype=np.float32), [10, 1, 0], [np.float64(v) for v in row]]
    for x in (row, tuple(row), *as_numbers):
        assert forest.score_one(x) == pytest.approx(expected, abs=ATOL)
    strided = np.repeat(np.array(row), 2)[::2]
    assert not strided.flags.c_contiguous
    assert forest.score_one(strided) == pytest.approx(expected, abs=ATOL)


@pytest.mark.parametrize("backend", BACKENDS)
def test_rejects_nan_and_wrong_shapes(backend):
    forest = CompiledForest.from_arrays(hand_made_arrays(), backend=backend)
    with pytest.raises(ValueError, match="NaN"):
        forest.score_many(np.array([[0.0, 0.0, 0.0], [0.0, np.nan, 0.0]]))
    with pytest.raises(ValueError, match="NaN"):
        forest.score_one([0.0, float("nan"), 0.0])
    with pytest.raises(ValueError, match="NaN"):
        forest.score_one(np.array([np.nan, 0.0, 0.0]))
    with pytest.raises(ValueError, match="NaN"):
        forest.feature_contributions([np.nan, 0.0, 0.0])
    with pytest.raises(ValueError, match="3"):
        forest.score_one([0.0, 0.0])
    with pytest.raises(ValueError, match="shape"):
        forest.score_many(np.zeros((2, 4)))
    with pytest.raises((TypeError, ValueError)):
        forest.score_one(["a", "b", "c"])


def hand_made_arrays():
    """One tree: split on feature 1 at 0.0, then on feature 0 at 5.0; max_samples 4."""
    return {
        "feature": np.array([1, -1, 0, -1, -1]),
        "threshold": np.array([0.0, 0.0, 5.0, 0.0, 0.0]),
        "left": np.array([1, -1, 3, -1, -1]),
        "right": np.array([2, -1, 4, -1, -1]),
        "value": np.array([0.0, 1.0, 1.0, 2.0, 4.0]),
        "roots": np.array([0]),
        "n_features": np.array(3),
        "max_samples": np.array(4),
    }


@pytest.mark.parametrize("backend", BACKENDS)
def test_hand_made_forest_scores_and_contributions(backend):
    forest = CompiledForest.from_arrays(hand_made_arrays(), backend=backend)
    c4 = average_path_length(np.array([4]))[0]

    # [10, 1, 0] goes right on feature 1, right on feature 0 and ends in the leaf of value 4.
    assert forest.score_one([10.0, 1.0, 0.0]) == pytest.approx(2 ** (-4.0 / c4), abs=1e-12)
    assert forest.score_one([0.0, -1.0, 0.0]) == pytest.approx(2 ** (-1.0 / c4), abs=1e-12)
    np.testing.assert_allclose(forest.feature_contributions([10.0, 1.0, 0.0]), [0.25, 0.25, 0.0])
    np.testing.assert_allclose(forest.feature_contributions([0.0, -1.0, 0.0]), [0.0, 1.0, 0.0])
    # A value equal to a threshold goes left.
    np.testing.assert_allclose(forest.feature_contributions([5.0, 0.0, 0.0]), [0.0, 1.0, 0.0])


def test_contributions_agree_between_backends_and_favour_the_odd_feature():
    rng = np.random.default_rng(3)
    X = rng.normal(size=(1000, 5))
    estimator = fit_sklearn(X, n_estimators=60)
    odd = np.array([0.0, 0.0, 9.0, 0.0, 0.0])
    backends = ("numpy", "c") if c_available() else ("numpy",)
    by_backend = [CompiledForest.from_sklearn(estimator, backend=b).feature_contributions(odd) for b in backends]

    contributions = by_backend[0]
    for other in by_backend[1:]:
        np.testing.assert_allclose(other, contributions)
    assert contributions.shape == (5,)
    assert (contributions >= 0).all() and contributions.sum() <= 1.0
    assert contributions.argmax() == 2


def test_arrays_round_trip_and_pickle():
    rng = np.random.default_rng(4)
    X = rng.normal(size=(300, 3))
    estimator = fit_sklearn(X, max_features=0.67)
    forest = CompiledForest.from_sklearn(estimator)
    arrays = forest.to_arrays()
    arrays["feature"][:] = -7  # to_arrays hands out copies: the forest must not change

    rebuilt = CompiledForest.from_arrays(forest.to_arrays(), backend="numpy")
    unpickled = pickle.loads(pickle.dumps(forest))

    expected = sklearn_scores(estimator, X)
    np.testing.assert_allclose(forest.score_many(X), expected, rtol=0, atol=ATOL)
    np.testing.assert_allclose(rebuilt.score_many(X), expected, rtol=0, atol=ATOL)
    np.testing.assert_allclose(unpickled.score_many(X), expected, rtol=0, atol=ATOL)
    assert set(arrays) == {"feature", "threshold", "left", "right", "value", "roots", "n_features", "max_samples"}


def broken(**changes):
    arrays = hand_made_arrays()
    arrays.update(changes)
    return arrays


@pytest.mark.parametrize(
    ("arrays", "message"),
    [
        ({k: v for k, v in hand_made_arrays().items() if k != "value"}, "missing"),
        (broken(threshold=np.array([0.0, 0.0, np.nan, 0.0, 0.0])), "NaN or infinite"),
        (broken(value=np.array([0.0, 1.0, 1.0, np.inf, 4.0])), "NaN or infinite"),
        (broken(threshold=np.array(["a", "b", "c", "d", "e"])), "dtype"),
        (broken(left=np.array([1.0, -1, 3, -1, -1])), "dtype"),
        (broken(left=np.array([1, -1, 3, -1])), "nodes"),
        (broken(left=np.array([0, -1, 3, -1, -1])), "after their parent"),  # a cycle
        (broken(right=np.array([2, -1, 7, -1, -1])), "after their parent"),
        (broken(feature=np.array([3, -1, 0, -1, -1])), r"\[0, 3\)"),
        (broken(left=np.array([1, 2, 3, -1, -1])), "leaves"),
        (broken(roots=np.array([1])), "roots"),
        (broken(roots=np.array([0, 2])), "after their parent"),  # tree 0 would point into tree 1
        (broken(n_features=np.array(0)), "n_features"),
        (broken(max_samples=np.array([4, 4])), "max_samples"),
        (broken(value=np.array([0.0, -1.0, 1.0, 2.0, 4.0])), ">= 0"),
    ],
)
def test_from_arrays_rejects_invalid_forests(arrays, message):
    with pytest.raises(ValueError, match=message):
        CompiledForest.from_arrays(arrays)


@pytest.mark.skipif(not c_available(), reason="C kernel not built")
def test_c_kernel_checks_structure_itself():
    # Even bypassing Python's validation, the kernel must refuse arrays that would loop or overrun.
    from fraudstream.model.detectors._forest import Kernel

    good = {k: np.asarray(v) for k, v in hand_made_arrays().items()}
    for name in ("feature", "left", "right", "roots"):
        good[name] = good[name].astype(np.int32)

    def kernel(n_features=3, **changes):
        a = {**good, **changes}
        return Kernel(a["feature"], a["threshold"], a["left"], a["right"], a["value"], a["roots"], n_features, 1.0)

    assert kernel().score_one([0.0, -1.0, 0.0]) == pytest.approx(2**-1.0)
    with pytest.raises(ValueError):
        kernel(left=np.array([0, -1, 3, -1, -1], np.int32))  # node 0 points at itself: endless walk
    with pytest.raises(ValueError):
        kernel(n_features=1)  # node 0 splits on feature 1: would read past the row
    with pytest.raises(TypeError):
        kernel(feature=good["feature"].astype(np.int64))


def test_unknown_backend_is_rejected():
    with pytest.raises(ValueError, match="backend"):
        CompiledForest.from_arrays(hand_made_arrays(), backend="gpu")


def test_from_sklearn_needs_a_fitted_forest():
    with pytest.raises(ValueError, match="fitted"):
        CompiledForest.from_sklearn(IsolationForest())


def test_detector_fits_and_scores_like_sklearn():
    rng = np.random.default_rng(5)
    X = rng.normal(size=(100, 4))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # max_samples=256 > 100 rows must not warn
        detector = IsolationForestDetector(n_estimators=30, random_state=1, max_features=0.75).fit(X)

    assert isinstance(detector, Detector)
    assert detector.estimator_.max_samples_ == 100
    expected = sklearn_scores(detector.estimator_, X)
    np.testing.assert_allclose(detector.score_many(X), expected, rtol=0, atol=ATOL)
    assert detector.score_one(X[3]) == pytest.approx(expected[3], abs=ATOL)
    assert detector.score_one([9.0, 9.0, 9.0, 9.0]) > detector.score_one([0.0, 0.0, 0.0, 0.0])


def test_detector_rejects_nan_training_data():
    X = np.ones((10, 2))
    X[3, 1] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        IsolationForestDetector(n_estimators=5).fit(X)


@pytest.mark.parametrize("module", [forest_module, iforest_module])
def test_docstring_examples_run(module):
    result = doctest.testmod(module)
    assert result.attempted > 0 and result.failed == 0


def test_numpy_is_the_fallback_without_the_c_kernel(monkeypatch):
    monkeypatch.setattr(forest_module, "_c_kernel", None)

    assert not c_available()
    assert CompiledForest.from_arrays(hand_made_arrays()).backend == "numpy"
    with pytest.raises(ValueError, match="not built"):
        CompiledForest.from_arrays(hand_made_arrays(), backend="c")
