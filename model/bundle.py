"""Model bundle: any detector, its feature list, alert threshold and metadata, as safe files.

A bundle is a directory holding ``bundle.json`` and ``detector.npz``::

    {"format": 2,
     "feature_names": [...], "threshold": 0.601, "metadata": {... "training_stats": ...},
     "detector": {"kind": "isolation_forest", "metadata": {...settings...},
                  "arrays": {"file": "detector.npz", "sha256": "<of detector.npz>"}},
     "checksum": {"sha256": "<of every other field, canonical JSON>"}}

The checksum covers every field that can change a decision — threshold, feature names, detector
kind and settings, training statistics (reasons read them), the arrays' own checksum — so an
edited or damaged bundle is refused, never served. (A checksum catches accidents and careless
edits; it is not a signature against someone who recomputes it.)

Loading executes nothing from the files: no pickle (``allow_pickle=False``), and the detector's
``kind`` is looked up in a fixed registry (``model/detectors/registry.py``). It needs only numpy
and the standard library, so serving starts fast and never imports a training library.

Format 1 bundles (checksum over the arrays only) are refused with a message to retrain: their
threshold and metadata cannot be verified, which is the very gap format 2 closes.
"""

from __future__ import annotations

import hashlib
import io
import json
import math
import numbers
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from fraudstream.model.detectors.base import Detector, DetectorParts
from fraudstream.model.detectors.registry import UnknownDetector, detector_class
from fraudstream.model.errors import DataIntegrityError
from fraudstream.model.features.step import FEATURES_VERSION

BUNDLE_FORMAT = 2
MANIFEST_FILE = "bundle.json"
ARRAYS_FILE = "detector.npz"
RETRAIN_HINT = "restore the bundle or retrain it (fraudstream train)"


class BundleError(DataIntegrityError):
    """A model bundle is missing, damaged, or does not match the model it describes."""


@dataclass(frozen=True)
class ModelBundle:
    """Everything serving needs to score a transaction's features and decide on an alert.

    ``metadata`` is free-form JSON (version, created_at, alert_rate, training statistics,
    metrics); the caller fills it, since model code never reads a clock.
    """

    detector: Detector
    feature_names: tuple[str, ...]
    threshold: float  # alert when is_alert(score, threshold)
    metadata: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        names = tuple(self.feature_names)
        object.__setattr__(self, "feature_names", names)  # accept a list, store a tuple
        if not all(isinstance(name, str) and name for name in names):
            raise BundleError("feature_names must be non-empty strings")
        if len(set(names)) != len(names):
            raise BundleError("feature_names must be unique")
        if not isinstance(self.detector, Detector):
            raise BundleError(f"{self.detector!r} is not a fitted detector (see model/detectors/base.py)")
        if len(names) != self.detector.n_features_in_:
            raise BundleError(
                f"the bundle lists {len(names)} feature names but the detector expects "
                f"{self.detector.n_features_in_} features"
            )
        number = isinstance(self.threshold, numbers.Real) and not isinstance(self.threshold, bool)
        if not number or not math.isfinite(self.threshold):
            raise BundleError(f"threshold must be a finite number, got {self.threshold!r}")
        object.__setattr__(self, "threshold", float(self.threshold))
        if not isinstance(self.metadata, dict):
            raise BundleError("metadata must be a dict")

    @property
    def kind(self) -> str:
        """The detector's registry key, e.g. ``isolation_forest``."""
        return self.detector.kind

    def score_many(self, X: np.ndarray) -> np.ndarray:
        """Scores of rows ordered as ``feature_names``; higher = more suspicious."""
        return self.detector.score_many(X)

    def score_one(self, x: Sequence[float]) -> float:
        """Score of one row ordered as ``feature_names``."""
        return self.detector.score_one(x)

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
    parts = bundle.detector.to_parts()
    try:
        detector_class(parts.kind)  # a bundle nobody could load must not be written
    except UnknownDetector as exc:
        raise BundleError(f"cannot save: {exc} (register it in model/detectors/registry.py)") from None
    arrays_bytes = _arrays_bytes(parts.arrays)
    body = {
        "format": BUNDLE_FORMAT,
        "feature_names": list(bundle.feature_names),
        "threshold": bundle.threshold,
        "metadata": bundle.metadata,
        "detector": {
            "kind": parts.kind,
            "metadata": dict(parts.metadata),
            "arrays": {"file": ARRAYS_FILE, "sha256": hashlib.sha256(arrays_bytes).hexdigest()},
        },
    }
    try:
        body = json.loads(json.dumps(body, allow_nan=False))  # the exact form a reader will see
    except (TypeError, ValueError) as exc:
        raise BundleError(f"metadata is not JSON-serialisable: {exc}") from None
    manifest = {**body, "checksum": {"sha256": manifest_digest(body)}}
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.new-", dir=target.parent))
    try:
        staging.chmod(0o755)  # mkdtemp makes it private; a serving user may differ from the trainer
        _write_synced(staging / ARRAYS_FILE, arrays_bytes)
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
    manifest_path = root / MANIFEST_FILE
    manifest = _read_manifest(manifest_path)
    spec = manifest["detector"]
    try:
        cls = detector_class(spec["kind"])
    except UnknownDetector as exc:
        raise BundleError(f"{manifest_path}: {exc}") from None
    arrays_path = root / ARRAYS_FILE
    arrays = _read_arrays(arrays_path, spec["arrays"].get("sha256"))
    try:
        detector = cls.from_parts(DetectorParts(spec["kind"], arrays, spec["metadata"]))
    except (ValueError, KeyError, TypeError) as exc:
        raise BundleError(f"{arrays_path} holds an invalid {spec['kind']} detector: {exc}") from None
    trained_on = manifest["metadata"].get("features_version")
    if trained_on is not None and trained_on != FEATURES_VERSION:
        raise BundleError(
            f"{root} was trained on features version {trained_on}, but this fraudstream computes "
            f"version {FEATURES_VERSION}: retrain it (fraudstream train)"
        )
    try:
        return ModelBundle(
            detector=detector,
            feature_names=tuple(manifest["feature_names"]),
            threshold=manifest["threshold"],
            metadata=manifest["metadata"],
        )
    except BundleError as exc:
        raise BundleError(f"{root}: {exc}") from None


def stored_format(directory: str | Path) -> int | None:
    """The format number a bundle directory declares (None when absent or unreadable); checks nothing else.

    Lets a caller that owns a bundle (the demo) retrain an outdated one instead of failing on it.
    """
    try:
        found = json.loads((Path(directory) / MANIFEST_FILE).read_bytes()).get("format")
    except (OSError, ValueError, UnicodeDecodeError, AttributeError):
        return None
    return found if isinstance(found, int) and not isinstance(found, bool) else None


def manifest_digest(body: Mapping[str, Any]) -> str:
    """sha256 of ``body`` as canonical JSON (sorted keys, no spaces): what ``checksum.sha256`` holds."""
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=False)
    return hashlib.sha256(canonical.encode()).hexdigest()


def _damaged(path: Path) -> BundleError:
    # One message for every checksum failure, whichever file it is.
    return BundleError(
        f"{path} does not match the checksum in {MANIFEST_FILE}: damaged, edited or from another bundle; {RETRAIN_HINT}"
    )


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
    if found == 1:
        raise BundleError(
            f"{path} is a format-1 bundle, whose checksum covers its arrays only (its threshold and metadata "
            f"cannot be verified); this fraudstream reads format {BUNDLE_FORMAT}: retrain it (fraudstream train)"
        )
    if found != BUNDLE_FORMAT:
        raise BundleError(f"{path} has bundle format {found!r}; this fraudstream reads format {BUNDLE_FORMAT}")
    checksum = manifest.pop("checksum", None)
    expected = checksum.get("sha256") if isinstance(checksum, dict) else None
    try:
        actual = manifest_digest(manifest)
    except ValueError:  # NaN or infinity written into the file by hand
        actual = None
    if not isinstance(expected, str) or actual != expected:
        raise _damaged(path)
    fields = {"feature_names": list, "threshold": (int, float), "metadata": dict, "detector": dict}
    for key, kind in fields.items():
        if not isinstance(manifest.get(key), kind) or isinstance(manifest.get(key), bool):
            raise BundleError(f"{path}: field {key!r} is missing or has the wrong type")
    spec = manifest["detector"]
    if not isinstance(spec.get("metadata"), dict) or not isinstance(spec.get("arrays"), dict):
        raise BundleError(f"{path}: field 'detector' needs 'kind', 'metadata' and 'arrays'")
    return manifest


def _arrays_bytes(arrays: Mapping[str, np.ndarray]) -> bytes:
    for name, array in arrays.items():
        if np.asarray(array).dtype.kind not in "biuf":
            raise BundleError(f"detector array {name!r} has dtype {np.asarray(array).dtype}: bundles hold numbers only")
    buffer = io.BytesIO()
    np.savez(buffer, **{name: np.asarray(array) for name, array in arrays.items()})
    return buffer.getvalue()


def _read_arrays(path: Path, sha256: Any) -> dict[str, np.ndarray]:
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise BundleError(f"{path} is missing") from None
    if not isinstance(sha256, str) or hashlib.sha256(data).hexdigest() != sha256:
        raise _damaged(path)
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
