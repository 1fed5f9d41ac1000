"""Model bundle: the compiled forest, its feature list, alert threshold and metadata, as safe files.

A bundle is a directory holding ``bundle.json`` (format, feature names, threshold, metadata and a
checksum of the arrays) and ``forest.npz`` (plain numeric arrays). Loading executes nothing from
the files (no pickle) and needs only numpy and the standard library, so serving starts fast.
"""

from __future__ import annotations

import hashlib
import io
import json
import math
import numbers
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from fraudstream.model.detectors.forest import CompiledForest

BUNDLE_FORMAT = 1
MANIFEST_FILE = "bundle.json"
ARRAYS_FILE = "forest.npz"


class BundleError(Exception):
    """A model bundle is missing, damaged, or does not match the model it describes."""


@dataclass(frozen=True)
class ModelBundle:
    """Everything serving needs to score a transaction's features and decide on an alert.

    ``metadata`` is free-form JSON (version, created_at, alert_rate, training statistics,
    metrics); the caller fills it, since model code never reads a clock.
    """

    forest: CompiledForest
    feature_names: tuple[str, ...]
    threshold: float  # alert when score >= threshold
    metadata: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        names = tuple(self.feature_names)
        object.__setattr__(self, "feature_names", names)  # accept a list, store a tuple
        if not all(isinstance(name, str) and name for name in names):
            raise BundleError("feature_names must be non-empty strings")
        if len(set(names)) != len(names):
            raise BundleError("feature_names must be unique")
        if len(names) != self.forest.n_features:
            raise BundleError(
                f"the bundle lists {len(names)} feature names but the forest expects {self.forest.n_features} features"
            )
        number = isinstance(self.threshold, numbers.Real) and not isinstance(self.threshold, bool)
        if not number or not math.isfinite(self.threshold):
            raise BundleError(f"threshold must be a finite number, got {self.threshold!r}")
        object.__setattr__(self, "threshold", float(self.threshold))
        if not isinstance(self.metadata, dict):
            raise BundleError("metadata must be a dict")

    def score_many(self, X: np.ndarray) -> np.ndarray:
        """Scores of rows ordered as ``feature_names``; higher = more suspicious."""
        return self.forest.score_many(X)

    def score_one(self, x: Sequence[float]) -> float:
        """Score of one row ordered as ``feature_names``."""
        return self.forest.score_one(x)

    @property
    def version(self) -> str:
        """The model version the caller recorded in ``metadata["version"]`` ("unknown" if absent)."""
        return str(self.metadata.get("version", "unknown"))


def save_bundle(bundle: ModelBundle, directory: str | Path) -> Path:
    """Write ``bundle`` to ``directory`` atomically; an existing bundle there is replaced.

    Files are written to a temporary sibling directory and renamed into place, so readers see
    the old bundle or the new one, never half of one (apart from a brief moment without either
    while an old bundle is swapped out).
    """
    import shutil
    import tempfile

    target = Path(directory)
    if target.exists() and not _is_replaceable(target):
        raise BundleError(f"refusing to replace {target}: it is not a model bundle directory")
    try:
        metadata_json = json.dumps(bundle.metadata, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise BundleError(f"metadata is not JSON-serialisable: {exc}") from None
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.new-", dir=target.parent))
    try:
        staging.chmod(0o755)  # mkdtemp makes it private; a serving user may differ from the trainer
        buffer = io.BytesIO()
        np.savez(buffer, **bundle.forest.to_arrays())
        arrays_bytes = buffer.getvalue()
        _write_synced(staging / ARRAYS_FILE, arrays_bytes)
        manifest = {
            "format": BUNDLE_FORMAT,
            "feature_names": list(bundle.feature_names),
            "threshold": bundle.threshold,
            "metadata": json.loads(metadata_json),
            "forest": {
                "file": ARRAYS_FILE,
                "sha256": hashlib.sha256(arrays_bytes).hexdigest(),
                "n_trees": bundle.forest.n_trees,
                "n_features": bundle.forest.n_features,
                "max_samples": bundle.forest.max_samples,
            },
        }
        _write_synced(staging / MANIFEST_FILE, json.dumps(manifest, indent=2).encode())
        if target.exists():
            retired = Path(tempfile.mkdtemp(prefix=f".{target.name}.old-", dir=target.parent))
            os.rename(target, retired / "bundle")
            os.rename(staging, target)
            shutil.rmtree(retired, ignore_errors=True)
        else:
            os.rename(staging, target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return target


def load_bundle(directory: str | Path) -> ModelBundle:
    """Read a bundle written by :func:`save_bundle`; BundleError says what is wrong and where."""
    root = Path(directory)
    if not root.is_dir():
        raise BundleError(f"no model bundle at {root}: directory not found")
    manifest = _read_manifest(root / MANIFEST_FILE)
    arrays = _read_arrays(root / ARRAYS_FILE, manifest["forest"].get("sha256"))
    try:
        forest = CompiledForest.from_arrays(arrays)
    except ValueError as exc:
        raise BundleError(f"{root / ARRAYS_FILE} holds an invalid forest: {exc}") from None
    try:
        return ModelBundle(
            forest=forest,
            feature_names=tuple(manifest["feature_names"]),
            threshold=manifest["threshold"],
            metadata=manifest["metadata"],
        )
    except BundleError as exc:
        raise BundleError(f"{root}: {exc}") from None


def _read_manifest(path: Path) -> dict[str, Any]:
    try:
        manifest = json.loads(path.read_bytes())
    except FileNotFoundError:
        raise BundleError(f"{path} is missing") from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise BundleError(f"{path} is not valid JSON: {exc}") from None
    if not isinstance(manifest, dict):
        raise BundleError(f"{path} must hold a JSON object")
    found = manifest.get("format")
    if found != BUNDLE_FORMAT:
        raise BundleError(f"{path} has bundle format {found!r}; this fraudstream reads format {BUNDLE_FORMAT}")
    expected = {"feature_names": list, "threshold": (int, float), "metadata": dict, "forest": dict}
    for key, kind in expected.items():
        if not isinstance(manifest.get(key), kind) or isinstance(manifest.get(key), bool):
            raise BundleError(f"{path}: field {key!r} is missing or has the wrong type")
    return manifest


def _read_arrays(path: Path, sha256: Any) -> dict[str, np.ndarray]:
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise BundleError(f"{path} is missing") from None
    if not isinstance(sha256, str) or hashlib.sha256(data).hexdigest() != sha256:
        raise BundleError(f"{path} does not match the checksum in {MANIFEST_FILE}: damaged or from another bundle")
    try:
        with np.load(io.BytesIO(data), allow_pickle=False) as npz:
            return {name: npz[name] for name in npz.files}
    except Exception as exc:  # numpy raises ValueError, OSError or zipfile errors for bad files
        raise BundleError(f"{path} is not a readable array file: {exc}") from None


def _write_synced(path: Path, data: bytes) -> None:
    # fsync before the rename so a crash cannot leave a renamed bundle with empty files.
    with open(path, "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())


def _is_replaceable(path: Path) -> bool:
    """Only an empty directory or an earlier bundle may be replaced: never a user's other data."""
    return path.is_dir() and (not any(path.iterdir()) or (path / MANIFEST_FILE).is_file())
