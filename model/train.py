"""Training: replay history through the feature step, fit a detector, set the threshold.

Training uses the same ``step`` as serving, so there is no training/serving skew. The detector is
any registered one (the Isolation Forest by default); labels, when present, go to its ``fit``
(the Isolation Forest ignores them) and measure the result.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from fraudstream.model.bundle import ModelBundle
from fraudstream.model.detectors.base import Detector
from fraudstream.model.detectors.isolation_forest import IsolationForestDetector
from fraudstream.model.features.keyed import FeatureState
from fraudstream.model.features.store import StateStore
from fraudstream.model.features.step import FEATURE_NAMES, FEATURES_VERSION
from fraudstream.model.policy import is_alert, threshold_for_alert_rate
from fraudstream.model.reasons import feature_stats

if TYPE_CHECKING:
    from fraudstream.model.schema import Transaction

DEFAULT_ALERT_RATE = 10.0  # alerts per 1,000 transactions


def feature_matrix(txns: Iterable[Transaction], state: StateStore | None = None) -> np.ndarray:
    """Feature rows for ``txns`` replayed in the given (event-time) order."""
    step = (state if state is not None else FeatureState()).features
    rows = [step(t) for t in txns]
    return np.array(rows, dtype=np.float64).reshape(len(rows), len(FEATURE_NAMES))


def train_bundle(
    X: np.ndarray,
    *,
    created_at: str,
    alert_rate: float = DEFAULT_ALERT_RATE,
    labels: Sequence[int] | None = None,
    detector: Detector | None = None,
    n_estimators: int = 100,
    max_samples: int = 256,
    random_state: int = 0,
) -> ModelBundle:
    """Fit ``detector`` on ``X`` and package it with its threshold, training statistics and metrics.

    ``detector`` is any unfitted detector (see model/detectors/registry.py); by default an
    Isolation Forest built from ``n_estimators``, ``max_samples`` and ``random_state``. ``labels``
    (1 = fraud), when known, are passed to ``fit`` (unsupervised detectors ignore them) and
    measure the result. ``created_at`` is passed in because the core never reads a clock.
    """
    if X.ndim != 2 or X.shape[1] != len(FEATURE_NAMES):
        raise ValueError(f"expected a (n, {len(FEATURE_NAMES)}) feature matrix, got {X.shape}")
    if X.shape[0] < 2:
        raise ValueError(f"need at least 2 training transactions, got {X.shape[0]}")
    y = None if labels is None else np.asarray(labels)
    if detector is None:
        detector = IsolationForestDetector(
            n_estimators=n_estimators, max_samples=min(max_samples, X.shape[0]), random_state=random_state
        )
    detector = detector.fit(X, y)
    scores = detector.score_many(X)
    threshold = threshold_for_alert_rate(scores, alert_rate)
    metrics: dict[str, Any] = {
        "n_train": int(X.shape[0]),
        "train_alerts_per_1000": float(np.mean(is_alert(scores, threshold)) * 1000),
    }
    if y is not None:
        from fraudstream.model.evaluate import ranking_metrics

        metrics["train"] = ranking_metrics(scores, y)
    parts = detector.to_parts()
    digest = hashlib.sha256()
    for name in sorted(parts.arrays):
        digest.update(name.encode() + np.ascontiguousarray(parts.arrays[name]).tobytes())
    metadata = {
        "version": f"{parts.kind}-{created_at[:10]}-{digest.hexdigest()[:8]}",
        "created_at": created_at,
        "detector": {"kind": parts.kind, **parts.metadata},
        "features_version": FEATURES_VERSION,
        "alert_rate": alert_rate,
        "training_stats": feature_stats(X),
        "metrics": metrics,
    }
    return ModelBundle(detector=detector, feature_names=FEATURE_NAMES, threshold=threshold, metadata=metadata)
