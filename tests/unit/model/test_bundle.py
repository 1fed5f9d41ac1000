"""Model bundles: safe round trips, atomic replacement, and clear errors for damaged files."""

import io
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from fraudstream.model.bundle import BUNDLE_FORMAT, BundleError, ModelBundle, load_bundle, save_bundle
from fraudstream.model.detectors.forest import CompiledForest
from fraudstream.model.detectors.isolation_forest import IsolationForestDetector

NAMES = ("amount", "amount_z", "tx_count_1h")


@pytest.fixture(scope="module")
def detector():
    X = np.random.default_rng(0).normal(size=(300, len(NAMES)))
    return IsolationForestDetector(n_estimators=20).fit(X)


@pytest.fixture()
def bundle(detector):
    metadata = {"version": "2024-05-01.1", "alert_rate": 0.01, "training": {"rows": 300, "mean": [0.1, 0.2, 0.3]}}
    return ModelBundle(detector.forest_, NAMES, 0.62, metadata)


@pytest.fixture()
def saved(bundle, tmp_path):
    return save_bundle(bundle, tmp_path / "model")


def rewrite_manifest(directory: Path, change) -> None:
    manifest = json.loads((directory / "bundle.json").read_text())
    change(manifest)
    (directory / "bundle.json").write_text(json.dumps(manifest))


def replace_arrays(directory: Path, arrays: dict, allow_pickle: bool = False) -> None:
    """Write new arrays and a matching checksum, so loading reaches the array checks."""
    import hashlib

    buffer = io.BytesIO()
    np.savez(buffer, allow_pickle=allow_pickle, **arrays)
    (directory / "forest.npz").write_bytes(buffer.getvalue())
    digest = hashlib.sha256(buffer.getvalue()).hexdigest()
    rewrite_manifest(directory, lambda m: m["forest"].update(sha256=digest))


def test_round_trip_keeps_scores_names_threshold_and_metadata(bundle, saved):
    loaded = load_bundle(saved)
    X = np.random.default_rng(1).normal(size=(50, 3)) * 3

    np.testing.assert_array_equal(loaded.score_many(X), bundle.score_many(X))
    assert loaded.score_one([5.0, 0.0, -5.0]) == bundle.score_one([5.0, 0.0, -5.0])
    assert loaded.feature_names == NAMES
    assert loaded.threshold == 0.62
    assert loaded.metadata == bundle.metadata
    assert loaded.version == "2024-05-01.1"
    assert sorted(p.name for p in saved.iterdir()) == ["bundle.json", "forest.npz"]
    assert json.loads((saved / "bundle.json").read_text())["format"] == BUNDLE_FORMAT


def test_save_replaces_an_existing_bundle_and_leaves_no_temporary_dirs(bundle, saved, tmp_path):
    newer = ModelBundle(bundle.forest, NAMES, 0.9, {"version": "2"})

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
    bad = ModelBundle(bundle.forest, NAMES, 0.5, {"version": "1", "when": object()})

    with pytest.raises(BundleError, match="JSON"):
        save_bundle(bad, tmp_path / "model")
    assert list(tmp_path.iterdir()) == []


def test_bundle_checks_feature_names_against_the_forest(bundle):
    with pytest.raises(BundleError, match="2 feature names but the forest expects 3"):
        ModelBundle(bundle.forest, NAMES[:2], 0.5, {})
    with pytest.raises(BundleError, match="unique"):
        ModelBundle(bundle.forest, ("a", "a", "b"), 0.5, {})
    with pytest.raises(BundleError, match="threshold"):
        ModelBundle(bundle.forest, NAMES, float("nan"), {})
    with pytest.raises(BundleError, match="threshold"):
        ModelBundle(bundle.forest, NAMES, True, {})
    assert ModelBundle(bundle.forest, list(NAMES), 1, {}).feature_names == NAMES
    assert ModelBundle(bundle.forest, NAMES, np.float32(0.5), {}).threshold == 0.5
    assert ModelBundle(bundle.forest, NAMES, 1, {}).version == "unknown"


def test_missing_directory_and_files(saved, tmp_path):
    with pytest.raises(BundleError, match="directory not found"):
        load_bundle(tmp_path / "nowhere")
    (saved / "forest.npz").unlink()
    with pytest.raises(BundleError, match=r"forest\.npz is missing"):
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
    with pytest.raises(BundleError, match="bundle format 2; this fraudstream reads format 1"):
        load_bundle(saved)


def test_missing_or_mistyped_manifest_fields(saved):
    rewrite_manifest(saved, lambda m: m.update(threshold="high"))
    with pytest.raises(BundleError, match="'threshold'"):
        load_bundle(saved)


def test_feature_count_mismatch(saved):
    rewrite_manifest(saved, lambda m: m.update(feature_names=["amount", "amount_z"]))
    with pytest.raises(BundleError, match="2 feature names but the forest expects 3"):
        load_bundle(saved)


def test_arrays_that_do_not_match_the_checksum(saved):
    data = bytearray((saved / "forest.npz").read_bytes())
    data[-10] ^= 0xFF
    (saved / "forest.npz").write_bytes(bytes(data))
    with pytest.raises(BundleError, match="checksum"):
        load_bundle(saved)


def test_invalid_forest_arrays(bundle, saved):
    arrays = bundle.forest.to_arrays()
    arrays["threshold"][0] = np.nan
    replace_arrays(saved, arrays)
    with pytest.raises(BundleError, match="invalid forest: threshold contains NaN"):
        load_bundle(saved)


def test_pickled_arrays_are_refused(bundle, saved):
    arrays = bundle.forest.to_arrays()
    arrays["value"] = np.array([object()] * len(arrays["value"]), dtype=object)
    replace_arrays(saved, arrays, allow_pickle=True)
    with pytest.raises(BundleError, match="not a readable array file"):
        load_bundle(saved)


def test_not_an_npz_file(saved):
    replace_arrays(saved, {})
    (saved / "forest.npz").write_bytes(b"garbage")
    rewrite_manifest(saved, lambda m: m["forest"].update(sha256=__import__("hashlib").sha256(b"garbage").hexdigest()))
    with pytest.raises(BundleError, match="not a readable array file"):
        load_bundle(saved)


def test_loading_and_scoring_never_imports_sklearn(saved):
    code = (
        "import sys\n"
        "from fraudstream.model.bundle import load_bundle\n"
        f"bundle = load_bundle({str(saved)!r})\n"
        "print(bundle.score_one([0.0, 1.0, 2.0]), bundle.forest.backend)\n"
        "assert not any(m.startswith('sklearn') for m in sys.modules), 'sklearn imported'\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    score, _backend = out.stdout.split()
    assert 0.0 < float(score) <= 1.0


def test_forest_survives_any_backend_after_load(bundle, saved):
    loaded = load_bundle(saved)
    numpy_forest = CompiledForest.from_arrays(loaded.forest.to_arrays(), backend="numpy")
    X = np.random.default_rng(2).normal(size=(20, 3))
    np.testing.assert_allclose(numpy_forest.score_many(X), bundle.score_many(X), rtol=0, atol=1e-12)
