"""The detector contract: every registered detector, served from a bundle, behaves the same way.

Parametrised over ``CASES``, and every kind in ``registry.kinds()`` must have at least one, so a
detector added to the registry is checked by itself. Adding one: a module in model/detectors/, a
line in model/detectors/registry.py, and a case in ``CASES`` below (a small unfitted instance, and
how its training library scores: the reference the served scores must equal to 1e-9). A detector
with several modes (``evidence``: weighted by labels, or a forest without them) has a case per mode.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from fraudstream.model.bundle import ModelBundle, load_bundle, save_bundle
from fraudstream.model.detectors import registry
from fraudstream.model.detectors.base import Detector, ExplainsScores
from fraudstream.model.detectors.evidence import EvidenceDetector
from fraudstream.model.detectors.isolation_forest import IsolationForestDetector
from fraudstream.model.schema import Transaction, validate
from fraudstream.model.scoring import Scorer
from fraudstream.model.train import feature_matrix, train_bundle
from fraudstream.services.sources.generator import GeneratorConfig, generate


@dataclass(frozen=True)
class Case:
    """How the contract builds and checks one detector kind."""

    kind: str  # its registry key
    make: Callable[[], Detector]  # an unfitted detector with small, fast settings
    reference: Callable[[Any, np.ndarray], np.ndarray]  # the training library's scores of the fitted detector
    training_modules: tuple[str, ...]  # imported by fit only: serving must never load them
    labels: bool = True  # fit with the training labels (False: without, as for a file that has none)
    mode: str | None = None  # the mode the fitted detector must report (mode_), when it has several


def _evidence_reference(fitted: Any, X: np.ndarray) -> np.ndarray:
    """The evidence detector as trained: its numpy tail tables, then scikit-learn's forest (no labels) or the
    learned weights (labels), then the calibration table; s / (1 + s)."""
    E = fitted.evidence(X)
    raw = -fitted.estimator_.score_samples(E) if fitted.mode_ == "forest" else E @ fitted.weights_
    s = fitted.calibration_.neg_log_tail(raw) / np.log(10.0)
    return s / (1.0 + s)


CASES: dict[str, Case] = {
    "isolation_forest": Case(
        kind="isolation_forest",
        make=lambda: IsolationForestDetector(n_estimators=40, random_state=3),
        reference=lambda fitted, X: -fitted.estimator_.score_samples(X),  # the project's transform: higher = worse
        training_modules=("sklearn",),
    ),
    "evidence[labels]": Case(
        kind="evidence",
        # the small history has 16 frauds in its training part: weigh from 10 on (the product's floor is 20)
        make=lambda: EvidenceDetector(min_frauds=10, n_estimators=40, max_samples=256, random_state=3),
        reference=_evidence_reference,
        training_modules=("sklearn", "scipy"),
        mode="weighted",
    ),
    "evidence[no labels]": Case(
        kind="evidence",
        make=lambda: EvidenceDetector(n_estimators=40, max_samples=256, random_state=3),
        reference=_evidence_reference,
        training_modules=("sklearn", "scipy"),
        labels=False,
        mode="forest",
    ),
}

TOLERANCE = 1e-9
KINDS = registry.kinds()


@dataclass
class Trained:
    case: str  # its key in CASES
    detector: Any  # fitted in this process: has the training library's state
    bundle: ModelBundle  # the same, saved and loaded back: what serving uses
    directory: Path
    X: np.ndarray
    test_txns: list[Transaction]
    X_test: np.ndarray


@pytest.fixture(scope="module")
def history() -> tuple[list[Transaction], np.ndarray, np.ndarray]:
    txns = [validate(r) for r in generate(GeneratorConfig(cards=300, days=6, seed=1))]
    labels = np.array([int(bool(t.is_fraud)) for t in txns])
    return txns, feature_matrix(txns), labels


@pytest.fixture(scope="module", params=sorted(CASES))
def trained(request: pytest.FixtureRequest, history: Any, tmp_path_factory: pytest.TempPathFactory) -> Trained:
    name = request.param
    txns, X, labels = history
    cut = len(txns) * 2 // 3
    given = labels[:cut] if CASES[name].labels else None
    bundle = train_bundle(X[:cut], created_at="2026-01-01T00:00:00Z", labels=given, detector=CASES[name].make())
    directory = save_bundle(bundle, tmp_path_factory.mktemp(CASES[name].kind) / "model")
    return Trained(name, bundle.detector, load_bundle(directory), directory, X[:cut], txns[cut:], X[cut:])


def case(trained: Trained) -> Case:
    return CASES[trained.case]


def fit_labels(trained: Trained, labels: np.ndarray) -> np.ndarray | None:
    """The labels this case fits with (None for a case that trains without them)."""
    return labels[: len(trained.X)] if case(trained).labels else None


# --------------------------------------------------------------------------- the registry


@pytest.mark.parametrize("kind", KINDS)
def test_every_registered_kind_has_a_contract_case(kind: str) -> None:
    assert kind in {c.kind for c in CASES.values()}, f"add a Case for {kind!r} to CASES in {__file__}"


@pytest.mark.parametrize("name", sorted(CASES))
def test_the_registry_resolves_each_kind_to_its_class(name: str) -> None:
    cls = registry.detector_class(CASES[name].kind)
    assert cls.kind == CASES[name].kind
    assert isinstance(CASES[name].make(), cls)


def test_an_unknown_kind_names_the_known_ones() -> None:
    with pytest.raises(registry.UnknownDetector, match="isolation_forest"):
        registry.detector_class("fraudstream.model.bundle:os")


# --------------------------------------------------------------------------- the contract


def test_served_scores_equal_the_training_librarys(trained: Trained) -> None:
    if case(trained).mode is not None:
        assert trained.bundle.detector.mode_ == case(trained).mode  # the mode this case is meant to check
    expected = case(trained).reference(trained.detector, trained.X_test)
    served = trained.bundle.score_many(trained.X_test)
    np.testing.assert_allclose(served, expected, rtol=0, atol=TOLERANCE)
    for i in range(0, len(trained.X_test), 97):
        assert abs(trained.bundle.score_one(trained.X_test[i].tolist()) - expected[i]) <= TOLERANCE


def test_save_and_load_round_trip_is_identical(trained: Trained, tmp_path: Path) -> None:
    before, after = trained.detector.to_parts(), trained.bundle.detector.to_parts()
    assert after.kind == before.kind
    assert dict(after.metadata) == dict(before.metadata)
    assert sorted(after.arrays) == sorted(before.arrays)
    for name, array in before.arrays.items():
        assert after.arrays[name].dtype == np.asarray(array).dtype, name
        np.testing.assert_array_equal(after.arrays[name], array, err_msg=name)
    np.testing.assert_array_equal(trained.bundle.score_many(trained.X_test), trained.detector.score_many(trained.X_test))
    again = load_bundle(save_bundle(trained.bundle, tmp_path / "again"))
    np.testing.assert_array_equal(again.score_many(trained.X_test), trained.bundle.score_many(trained.X_test))
    if isinstance(trained.detector, ExplainsScores):
        row = trained.X_test[0]
        np.testing.assert_array_equal(
            trained.bundle.detector.feature_contributions(row), trained.detector.feature_contributions(row)
        )


def test_every_alert_has_reasons(trained: Trained) -> None:
    decisions = Scorer(trained.bundle).decide_batch(trained.test_txns)
    alerts = [d for d in decisions if d.alert]
    assert alerts, "the test window should raise some alerts at the trained budget"
    assert all(d.reasons and all(isinstance(r, str) and r for r in d.reasons) for d in alerts)
    assert all(not d.reasons for d in decisions if not d.alert)


class _WithoutContributions:
    """The same detector with the optional capability hidden, as a detector without it would be."""

    def __init__(self, inner: Detector) -> None:
        self._inner = inner
        self.kind = inner.kind
        self.n_features_in_ = inner.n_features_in_
        self.fit, self.score_many, self.score_one = inner.fit, inner.score_many, inner.score_one
        self.to_parts, self.from_parts = inner.to_parts, inner.from_parts


def test_reasons_degrade_gracefully_without_contributions(trained: Trained) -> None:
    plain = _WithoutContributions(trained.bundle.detector)
    assert not isinstance(plain, ExplainsScores)
    bundle = ModelBundle(plain, trained.bundle.feature_names, trained.bundle.threshold, trained.bundle.metadata)  # type: ignore[arg-type]
    decisions = Scorer(bundle).decide_batch(trained.test_txns)
    alerts = [d for d in decisions if d.alert]
    assert alerts and all(d.reasons for d in alerts)
    with_contributions = Scorer(trained.bundle).decide_batch(trained.test_txns)
    assert [d.score for d in decisions] == [d.score for d in with_contributions]  # reasons only, never the verdict


def test_scores_are_finite_and_in_the_unit_interval(trained: Trained) -> None:
    X = trained.X_test
    extremes = np.vstack([X, np.zeros_like(X), X * 1e6, -X * 1e6, np.full_like(X, 1e300), np.full_like(X, -1e300)])
    scores = trained.bundle.score_many(extremes)
    assert scores.shape == (len(extremes),) and scores.dtype == np.float64
    assert np.isfinite(scores).all() and (scores >= 0).all() and (scores <= 1).all()
    for row in extremes[-4:]:
        assert 0.0 <= trained.bundle.score_one(row.tolist()) <= 1.0


def test_fitting_and_scoring_are_deterministic(trained: Trained, history: Any) -> None:
    _, _, labels = history
    again = case(trained).make().fit(trained.X, fit_labels(trained, labels))
    for name, array in trained.detector.to_parts().arrays.items():
        np.testing.assert_array_equal(again.to_parts().arrays[name], array, err_msg=name)
    first = trained.bundle.score_many(trained.X_test)
    np.testing.assert_array_equal(trained.bundle.score_many(trained.X_test), first)
    np.testing.assert_array_equal(again.score_many(trained.X_test), first)
    singles = np.array([trained.bundle.score_one(row) for row in trained.X_test[:200]])
    np.testing.assert_allclose(singles, first[:200], rtol=0, atol=1e-12)  # one at a time = in a batch


def test_fit_takes_optional_labels(trained: Trained, history: Any) -> None:
    _, _, labels = history
    unlabelled = case(trained).make()
    assert unlabelled.fit(trained.X) is unlabelled
    labelled = case(trained).make()
    assert labelled.fit(trained.X, labels[: len(trained.X)]) is labelled
    assert isinstance(unlabelled, Detector) and unlabelled.n_features_in_ == trained.X.shape[1]


def test_an_unfitted_detector_has_no_parts(trained: Trained) -> None:
    with pytest.raises(ValueError, match="fit"):
        case(trained).make().to_parts()


def test_serving_never_imports_the_training_library(trained: Trained) -> None:
    modules = case(trained).training_modules
    code = (
        "import sys\n"
        "from fraudstream.model.bundle import load_bundle\n"
        "from fraudstream.model.scoring import Scorer\n"
        f"bundle = load_bundle({str(trained.directory)!r})\n"
        "Scorer(bundle)\n"
        f"print(bundle.score_one([0.0] * {trained.X.shape[1]}))\n"
        f"loaded = [m for m in sys.modules if m.split('.')[0] in {modules!r}]\n"
        "assert not loaded, loaded\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert 0.0 <= float(out.stdout) <= 1.0
