"""Model bundles: safe round trips, atomic replacement, and clear errors for damaged files."""

import io
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from fraudstream.model.bundle import (
    ARRAYS_FILE,
    BUNDLE_FORMAT,
    BundleError,
    ModelBundle,
    load_bundle,
    manifest_digest,
    save_bundle,
    stored_format,
)
from fraudstream.model.detectors.forest import CompiledForest
from fraudstream.model.detectors.isolation_forest import IsolationForestDetector
from fraudstream.model.features.step import FEATURES_VERSION

NAMES = ("amount", "amount_z", "tx_count_1h")


@pytest.fixture(scope="module")
def detector():
    X = np.random.default_rng(0).normal(size=(300, len(NAMES)))
    return IsolationForestDetector(n_estimators=20).fit(X)


@pytest.fixture()
def bundle(detector):
    metadata = {
        "version": "2024-05-01.1",
        "alert_rate": 0.01,
        "training_stats": {name: {"p05": -1.5, "p50": 0.0, "p95": 1.5} for name in NAMES},
    }
    return ModelBundle(detector, NAMES, 0.62, metadata)


@pytest.fixture()
def saved(bundle, tmp_path):
    return save_bundle(bundle, tmp_path / "model")


def rewrite_manifest(directory: Path, change, *, reseal: bool = True) -> None:
    """Edit bundle.json; ``reseal`` recomputes its checksum (as a careful forger would), so loading
    reaches the checks behind the checksum."""
    manifest = json.loads((directory / "bundle.json").read_text())
    change(manifest)
    if reseal:
        manifest.pop("checksum", None)
        manifest["checksum"] = {"sha256": manifest_digest(manifest)}
    (directory / "bundle.json").write_text(json.dumps(manifest))


def replace_arrays(directory: Path, arrays: dict, allow_pickle: bool = False) -> None:
    """Write new arrays and a matching checksum, so loading reaches the array checks."""
    import hashlib

    buffer = io.BytesIO()
    np.savez(buffer, allow_pickle=allow_pickle, **arrays)
    (directory / ARRAYS_FILE).write_bytes(buffer.getvalue())
    digest = hashlib.sha256(buffer.getvalue()).hexdigest()
    rewrite_manifest(directory, lambda m: m["detector"]["arrays"].update(sha256=digest))


def test_round_trip_keeps_scores_names_threshold_and_metadata(bundle, saved):
    loaded = load_bundle(saved)
    X = np.random.default_rng(1).normal(size=(50, 3)) * 3

    np.testing.assert_array_equal(loaded.score_many(X), bundle.score_many(X))
    assert loaded.score_one([5.0, 0.0, -5.0]) == bundle.score_one([5.0, 0.0, -5.0])
    assert loaded.feature_names == NAMES
    assert loaded.threshold == 0.62
    assert loaded.metadata == bundle.metadata
    assert loaded.version == "2024-05-01.1"
    assert sorted(p.name for p in saved.iterdir()) == ["bundle.json", "detector.npz"]
    assert loaded.kind == "isolation_forest"
    np.testing.assert_array_equal(
        loaded.detector.feature_contributions([5.0, 0.0, -5.0]), bundle.detector.feature_contributions([5.0, 0.0, -5.0])
    )
    assert json.loads((saved / "bundle.json").read_text())["format"] == BUNDLE_FORMAT


def test_save_replaces_an_existing_bundle_and_leaves_no_temporary_dirs(bundle, saved, tmp_path):
    newer = ModelBundle(bundle.detector, NAMES, 0.9, {"version": "2"})

    assert save_bundle(newer, saved) == saved

    assert load_bundle(saved).version == "2"
    assert load_bundle(saved).threshold == 0.9
    assert [p.name for p in tmp_path.iterdir()] == ["model"]


def test_save_refuses_to_replace_a_directory_that_is_not_a_bundle(bundle, tmp_path):
    precious = tmp_path / "data"
    precious.mkdir()
    (precious / "notes.txt").write_text("keep me")

    with pytest.raises(BundleError, match="not a model bundle"):
        save_bundle(bundle, precious)
    assert (precious / "notes.txt").read_text() == "keep me"


def test_save_rejects_metadata_that_is_not_json_and_cleans_up(bundle, tmp_path):
    bad = ModelBundle(bundle.detector, NAMES, 0.5, {"version": "1", "when": object()})

    with pytest.raises(BundleError, match="JSON"):
        save_bundle(bad, tmp_path / "model")
    assert list(tmp_path.iterdir()) == []


def test_bundle_checks_feature_names_against_the_detector(bundle):
    with pytest.raises(BundleError, match="2 feature names but the detector expects 3"):
        ModelBundle(bundle.detector, NAMES[:2], 0.5, {})
    with pytest.raises(BundleError, match="unique"):
        ModelBundle(bundle.detector, ("a", "a", "b"), 0.5, {})
    with pytest.raises(BundleError, match="threshold"):
        ModelBundle(bundle.detector, NAMES, float("nan"), {})
    with pytest.raises(BundleError, match="threshold"):
        ModelBundle(bundle.detector, NAMES, True, {})
    assert ModelBundle(bundle.detector, list(NAMES), 1, {}).feature_names == NAMES
    assert ModelBundle(bundle.detector, NAMES, np.float32(0.5), {}).threshold == 0.5
    assert ModelBundle(bundle.detector, NAMES, 1, {}).version == "unknown"
    with pytest.raises(BundleError, match="not a fitted detector"):
        ModelBundle(IsolationForestDetector(), NAMES, 0.5, {})
    with pytest.raises(BundleError, match="not a fitted detector"):
        ModelBundle(bundle.detector.forest_, NAMES, 0.5, {})  # a bare forest is not a detector


def test_missing_directory_and_files(saved, tmp_path):
    with pytest.raises(BundleError, match="directory not found"):
        load_bundle(tmp_path / "nowhere")
    (saved / ARRAYS_FILE).unlink()
    with pytest.raises(BundleError, match=r"detector\.npz is missing"):
        load_bundle(saved)
    (saved / "bundle.json").unlink()
    with pytest.raises(BundleError, match=r"bundle\.json is missing"):
        load_bundle(saved)


def test_bad_json(saved):
    (saved / "bundle.json").write_text("{not json")
    with pytest.raises(BundleError, match="not valid JSON"):
        load_bundle(saved)
    (saved / "bundle.json").write_text("[1, 2]")
    with pytest.raises(BundleError, match="JSON object"):
        load_bundle(saved)


def test_wrong_format_version(saved):
    rewrite_manifest(saved, lambda m: m.update(format=BUNDLE_FORMAT + 1))
    with pytest.raises(BundleError, match="bundle format 3; this fraudstream reads format 2"):
        load_bundle(saved)


def test_a_format_1_bundle_is_refused_with_a_hint_to_retrain(saved):
    rewrite_manifest(saved, lambda m: m.update(format=1), reseal=False)
    with pytest.raises(BundleError, match=r"format-1 bundle.*cannot be verified.*retrain it \(fraudstream train\)"):
        load_bundle(saved)


def test_missing_or_mistyped_manifest_fields(saved):
    rewrite_manifest(saved, lambda m: m.update(threshold="high"))
    with pytest.raises(BundleError, match="'threshold'"):
        load_bundle(saved)


def test_feature_count_mismatch(saved):
    rewrite_manifest(saved, lambda m: m.update(feature_names=["amount", "amount_z"]))
    with pytest.raises(BundleError, match="2 feature names but the detector expects 3"):
        load_bundle(saved)


def test_arrays_that_do_not_match_the_checksum(saved):
    data = bytearray((saved / ARRAYS_FILE).read_bytes())
    data[-10] ^= 0xFF
    (saved / ARRAYS_FILE).write_bytes(bytes(data))
    with pytest.raises(BundleError, match="checksum"):
        load_bundle(saved)


def test_invalid_forest_arrays(bundle, saved):
    arrays = dict(bundle.detector.to_parts().arrays)
    arrays["threshold"][0] = np.nan
    replace_arrays(saved, arrays)
    with pytest.raises(BundleError, match="invalid isolation_forest detector: threshold contains NaN"):
        load_bundle(saved)


def test_pickled_arrays_are_refused(bundle, saved):
    arrays = dict(bundle.detector.to_parts().arrays)
    arrays["value"] = np.array([object()] * len(arrays["value"]), dtype=object)
    replace_arrays(saved, arrays, allow_pickle=True)
    with pytest.raises(BundleError, match="not a readable array file"):
        load_bundle(saved)


def test_not_an_npz_file(saved):
    replace_arrays(saved, {})
    (saved / ARRAYS_FILE).write_bytes(b"garbage")
    rewrite_manifest(saved, lambda m: m["detector"]["arrays"].update(sha256=__import__("hashlib").sha256(b"garbage").hexdigest()))
    with pytest.raises(BundleError, match="not a readable array file"):
        load_bundle(saved)


def test_loading_and_scoring_never_imports_sklearn(saved):
    code = (
        "import sys\n"
        "from fraudstream.model.bundle import load_bundle\n"
        f"bundle = load_bundle({str(saved)!r})\n"
        "print(bundle.score_one([0.0, 1.0, 2.0]), bundle.detector.forest_.backend)\n"
        "assert not any(m.startswith('sklearn') for m in sys.modules), 'sklearn imported'\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    score, _backend = out.stdout.split()
    assert 0.0 < float(score) <= 1.0


def test_forest_survives_any_backend_after_load(bundle, saved):
    loaded = load_bundle(saved)
    numpy_forest = CompiledForest.from_arrays(loaded.detector.to_parts().arrays, backend="numpy")
    X = np.random.default_rng(2).normal(size=(20, 3))
    np.testing.assert_allclose(numpy_forest.score_many(X), bundle.score_many(X), rtol=0, atol=1e-12)


# --------------------------------------------------------------------------- issue 8.3: every decision input is sealed


def _set(path: tuple, value):
    def change(manifest: dict) -> None:
        target = manifest
        for key in path[:-1]:
            target = target[key]
        target[path[-1]] = value(target[path[-1]]) if callable(value) else value

    return change


DECISION_EDITS = {
    "threshold": _set(("threshold",), 0.101),
    "feature names renamed": _set(("feature_names",), lambda names: [names[0], names[1], "renamed"]),
    "feature names reordered": _set(("feature_names",), lambda names: list(reversed(names))),
    "training stats used by reasons": _set(("metadata", "training_stats", "amount", "p95"), 99.0),
    "detector settings": _set(("detector", "metadata", "n_estimators"), 5),
    "detector kind": _set(("detector", "kind"), "supervised"),
    "arrays checksum": _set(("detector", "arrays", "sha256"), "0" * 64),
    "model version": _set(("metadata", "version"), "2099-01-01.1"),
    "checksum removed": lambda m: m.pop("checksum"),
}


@pytest.mark.parametrize("edit", DECISION_EDITS.values(), ids=DECISION_EDITS.keys())
def test_editing_any_field_of_bundle_json_is_refused(saved, edit):
    """Changing the threshold 0.62 -> 0.101 once silently turned every transaction into an alert."""
    rewrite_manifest(saved, edit, reseal=False)
    with pytest.raises(BundleError) as caught:
        load_bundle(saved)
    assert str(caught.value) == (
        f"{saved / 'bundle.json'} does not match the checksum in bundle.json: damaged, edited or from another "
        "bundle; restore the bundle or retrain it (fraudstream train)"
    )


def test_a_damaged_manifest_and_damaged_arrays_get_the_same_message(saved, tmp_path, bundle):
    other = save_bundle(bundle, tmp_path / "other")
    rewrite_manifest(saved, _set(("threshold",), 0.101), reseal=False)
    data = bytearray((other / ARRAYS_FILE).read_bytes())
    data[-10] ^= 0xFF
    (other / ARRAYS_FILE).write_bytes(bytes(data))
    messages = []
    for directory in (saved, other):
        with pytest.raises(BundleError) as caught:
            load_bundle(directory)
        messages.append(str(caught.value).replace(str(directory), "<bundle>"))
    assert messages[0].replace("bundle.json does", "FILE does") == messages[1].replace("detector.npz does", "FILE does")


def test_whitespace_and_key_order_do_not_break_the_seal(saved):
    manifest = json.loads((saved / "bundle.json").read_text())
    (saved / "bundle.json").write_text(json.dumps(dict(reversed(list(manifest.items()))), indent=7))
    assert load_bundle(saved).threshold == 0.62


def test_an_unknown_detector_kind_is_refused_without_importing_anything(saved):
    rewrite_manifest(saved, _set(("detector", "kind"), "os:system"))
    with pytest.raises(BundleError, match=r"unknown detector kind 'os:system'; this fraudstream knows evidence, isolation_forest"):
        load_bundle(saved)


def test_a_bundle_trained_on_other_features_is_refused(saved):
    rewrite_manifest(saved, _set(("metadata",), lambda m: {**m, "features_version": "0-old"}))
    with pytest.raises(BundleError, match=f"features version 0-old.*computes version {FEATURES_VERSION}: retrain"):
        load_bundle(saved)


def test_object_arrays_are_refused_when_saving(bundle, tmp_path):
    class Odd(IsolationForestDetector):
        def to_parts(self):
            parts = super().to_parts()
            return type(parts)(parts.kind, {**parts.arrays, "extra": np.array([object()])}, parts.metadata)

    odd = Odd.from_forest(bundle.detector.forest_)
    with pytest.raises(BundleError, match="numbers only"):
        save_bundle(ModelBundle(odd, NAMES, 0.5, {}), tmp_path / "model")
    assert list(tmp_path.iterdir()) == []


def test_stored_format_reads_only_the_declared_number(saved, tmp_path):
    assert stored_format(saved) == BUNDLE_FORMAT
    rewrite_manifest(saved, lambda m: m.update(format=1), reseal=False)
    assert stored_format(saved) == 1
    assert stored_format(tmp_path / "nowhere") is None
    (saved / "bundle.json").write_text("[1]")
    assert stored_format(saved) is None


def test_a_detector_kind_missing_from_the_registry_is_not_saved(bundle, tmp_path):
    class Unregistered(IsolationForestDetector):
        kind = "unregistered"

    detector = Unregistered.from_forest(bundle.detector.forest_)
    with pytest.raises(BundleError, match="unknown detector kind 'unregistered'.*registry"):
        save_bundle(ModelBundle(detector, NAMES, 0.5, {}), tmp_path / "model")
    assert list(tmp_path.iterdir()) == []
