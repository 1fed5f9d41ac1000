"""The one protocol every detector answers, and the plain parts a model bundle stores for it.

A detector is ``fit(X, y=None)`` / ``score_many`` / ``score_one`` (higher = more suspicious, in
[0, 1]) plus ``to_parts`` / ``from_parts``: its learned state as :class:`DetectorParts` — a
``kind`` (its registry key), named numpy arrays and JSON metadata — so a bundle can hold any
detector and load it without executing code. Per-feature contributions (for reason codes) are an
optional capability, :class:`ExplainsScores`; reasons degrade gracefully without it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, Protocol, runtime_checkable

import numpy as np

from fraudstream.model.errors import DataIntegrityError


@dataclass(frozen=True)
class DetectorParts:
    """A fitted detector as data: what a bundle writes (arrays to .npz, metadata to JSON).

    ``arrays`` hold numbers only (no object dtype: bundles load with ``allow_pickle=False``);
    ``metadata`` is JSON-serialisable (the detector's settings and anything scoring needs).
    """

    kind: str
    arrays: Mapping[str, np.ndarray]
    metadata: Mapping[str, Any] = field(default_factory=dict)


class NotFitted(DataIntegrityError, ValueError, AttributeError):
    """The detector has no learned state yet (``fit`` first); an AttributeError too, as in scikit-learn."""


@runtime_checkable
class Detector(Protocol):
    """A fraud detector: settings in the constructor, learned attributes end in ``_``.

    Scores are float64 in [0, 1]; higher means more suspicious. Turning a score into an alert
    is :func:`fraudstream.model.policy.is_alert`'s job, never the detector's.
    """

    kind: ClassVar[str]  # its key in the registry (model/detectors/registry.py)

    @property
    def n_features_in_(self) -> int:
        """Number of features the fitted detector expects per row."""
        ...

    def fit(self, X: np.ndarray, y: np.ndarray | None = None) -> Detector:
        """Learn from rows ``X`` (n, n_features) and, for supervised detectors, labels ``y`` (1 = fraud).

        Unsupervised detectors accept and ignore ``y``. Training libraries are imported here,
        never at module level, so serving does not load them. Returns self.
        """
        ...

    def score_many(self, X: np.ndarray) -> np.ndarray:
        """Scores of the rows of ``X`` (n, n_features) float64 -> (n,) float64."""
        ...

    def score_one(self, x: Sequence[float]) -> float:
        """Score of one row; the per-event path, so it should be cheap."""
        ...

    def to_parts(self) -> DetectorParts:
        """The fitted state as arrays and JSON metadata (ValueError if not fitted)."""
        ...

    @classmethod
    def from_parts(cls, parts: DetectorParts) -> Detector:
        """Rebuild a fitted detector from :meth:`to_parts` output; ValueError names what is wrong.

        Must need neither the training library nor any code from the files: validate the arrays.
        """
        ...


@runtime_checkable
class ExplainsScores(Protocol):
    """Optional capability: how much each feature pushed one row's score up (for reason codes)."""

    def feature_contributions(self, x: Sequence[float]) -> np.ndarray:
        """(n_features,) float64, >= 0, larger = pushed the score up more."""
        ...
