"""Detectors by ``kind``: the only way a model bundle turns the kind it names into code.

A bundle's ``kind`` is looked up in :data:`DETECTORS`, a fixed table in this package; nothing is
ever imported by a name read from a file, so loading a bundle executes no code from it. Entries
are imported lazily, so loading an Isolation Forest bundle never imports another detector.

Adding a detector (e.g. a supervised model):

1. one module in ``model/detectors/`` with a class that answers
   :class:`~fraudstream.model.detectors.base.Detector` (``kind`` class attribute equal to its key
   here; ``fit(X, y=None)`` importing its training library inside ``fit``; ``to_parts`` /
   ``from_parts`` using numeric arrays and JSON metadata only; optionally
   ``feature_contributions`` for reasons);
2. one line in :data:`DETECTORS` below;
3. one case in ``tests/contract/test_detector_contract.py`` (``CASES``: how to build a small one
   and how its training library scores, the reference served scores must equal to 1e-9); the
   contract suite then runs every check against it, and fails for a kind without a case.

``fraudstream.model.train.train_bundle(X, detector=YourDetector(...))`` then trains and packages it.
"""

from __future__ import annotations

import importlib

from fraudstream.model.detectors.base import Detector
from fraudstream.model.errors import InputError

# kind -> "module:Class" inside fraudstream.model.detectors. One line per detector.
DETECTORS: dict[str, str] = {
    "evidence": "evidence:EvidenceDetector",
    "isolation_forest": "isolation_forest:IsolationForestDetector",
}


class UnknownDetector(InputError, ValueError):
    """A bundle or a caller names a detector kind this fraudstream does not have."""


def kinds() -> tuple[str, ...]:
    """Every registered detector kind, sorted."""
    return tuple(sorted(DETECTORS))


def detector_class(kind: str) -> type[Detector]:
    """The class registered for ``kind``; UnknownDetector lists the known kinds."""
    target = DETECTORS.get(kind) if isinstance(kind, str) else None
    if target is None:
        raise UnknownDetector(f"unknown detector kind {kind!r}; this fraudstream knows {', '.join(kinds())}")
    module_name, class_name = target.split(":")
    module = importlib.import_module(f"fraudstream.model.detectors.{module_name}")
    cls: type[Detector] = getattr(module, class_name)
    return cls
