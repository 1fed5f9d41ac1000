"""The Lambda packager's decisions without pip or the network: what it ships, what it refuses, where things go.

The dependencies are replaced by a small fake install here; tests/integration/test_lambda_package.py builds
the real zip and runs it under the Lambda emulator.
"""

from __future__ import annotations

import os
import re
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from fraudstream.model.bundle import ModelBundle, save_bundle
from fraudstream.model.detectors.forest import c_available
from fraudstream.model.detectors.isolation_forest import IsolationForestDetector
from fraudstream.model.features.step import FEATURE_NAMES
from fraudstream.services.api import lambda_function
from fraudstream.services.cli import app, main
from fraudstream.services.packaging import lambda_zip
from fraudstream.services.packaging.lambda_zip import (
    RUNTIMES, PackageTooLarge, PackagingError, build, check_limits, glibc_needed, serving_requirements,
)


@pytest.fixture(scope="module")
def model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    X = np.random.default_rng(0).normal(size=(200, len(FEATURE_NAMES)))
    bundle = ModelBundle(IsolationForestDetector(n_estimators=5).fit(X), FEATURE_NAMES, 0.6,
                         {"version": "test", "training_stats": {n: {"p05": -1, "p50": 0, "p95": 1} for n in FEATURE_NAMES}})
    return save_bundle(bundle, tmp_path_factory.mktemp("model") / "model")


def fake_site(root: Path, **packages: int) -> Path:
    """An 'installed dependencies' folder: one package per name holding that many incompressible bytes."""
    for name, size in packages.items():
        (root / name).mkdir(parents=True)
        (root / name / "__init__.py").write_bytes(b"")
        (root / name / "blob.bin").write_bytes(os.urandom(size))
    return root


def names_of(requirements: list[str]) -> set[str]:
    return {re.split(r"[=<>!~\[; ]", r, maxsplit=1)[0].lower() for r in requirements}


def test_the_serving_requirements_are_the_api_extra_without_training_streaming_or_the_server() -> None:
    names = names_of(serving_requirements())
    assert {"numpy", "msgspec", "pydantic", "fastapi", "mangum", "redis", "opensearch-py"} <= names
    assert not names & {"scikit-learn", "pandas", "kafka-python", "elasticsearch", "streamlit",
                        "uvicorn", "uvloop", "httptools", "awslambdaric"}
    assert all("==" in r for r in serving_requirements())  # the project's pins, nothing floating
    assert "opensearch-py" not in names_of(serving_requirements(with_opensearch=False))


def test_wheels_are_chosen_for_the_runtime_glibc() -> None:
    assert RUNTIMES["3.11"].platforms[0] == "manylinux2014_x86_64"
    assert RUNTIMES["3.11"].platforms[-1] == "manylinux_2_26_x86_64"  # Amazon Linux 2
    assert RUNTIMES["3.12"].platforms[-1] == "manylinux_2_34_x86_64"  # Amazon Linux 2023
    assert RUNTIMES["3.12"].ext_suffix == ".cpython-312-x86_64-linux-gnu.so"


def test_limits_name_what_is_over() -> None:
    check_limits(50 * 1024 * 1024, 250 * 1024 * 1024)  # exactly at the limits: accepted
    with pytest.raises(PackageTooLarge, match=r"zipped 50\.0 MB > 50\.0 MB"):
        check_limits(50 * 1024 * 1024 + 1, 1)
    with pytest.raises(PackageTooLarge, match=r"unzipped 250\.0 MB > 250\.0 MB"):
        check_limits(1, 250 * 1024 * 1024 + 1)


def test_glibc_needed_reads_the_newest_symbol_version(tmp_path: Path) -> None:
    library = tmp_path / "lib.so"
    library.write_bytes(b"\0memcpy\0GLIBC_2.14\0GLIBC_2.2.5\0GLIBC_2.29\0")
    assert glibc_needed(library) == (2, 29)


@pytest.fixture
def offline(monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    """build() with a fake dependency install of the given packages (no pip)."""
    def use(**packages: int) -> None:
        site = fake_site(tmp_path / "site", **packages)
        monkeypatch.setattr(lambda_zip, "install_dependencies", lambda requirements, runtime, cache: site)
    return use


def test_the_zip_has_the_handler_the_bundle_and_fraudstream_at_its_root(offline, model: Path, tmp_path: Path) -> None:
    offline(numpy=1000, grpc=1000, bin=10)
    report = build(model, tmp_path / "fn.zip", python="3.11", cache=tmp_path / "cache")
    names = set(zipfile.ZipFile(report.path).namelist())
    assert {"lambda_function.py", "bundle/bundle.json", "bundle/detector.npz", "numpy/__init__.py",
            "fraudstream/model/bundle.py", "fraudstream/services/api/lambda_function.py"} <= names
    assert not any(n.startswith(("grpc/", "bin/", "fraudstream/dashboard/")) for n in names)  # pruned, not shipped
    if c_available():  # this install's kernel is the one for Python 3.11
        assert "fraudstream/model/detectors/_forest.cpython-311-x86_64-linux-gnu.so" in names, report.kernel
    assert report.zipped_bytes == report.path.stat().st_size and report.unzipped_bytes > report.zipped_bytes
    shim = zipfile.ZipFile(report.path).read("lambda_function.py").decode()
    assert "lambda_handler = build_handler(bundle=" in shim


def test_the_same_inputs_give_the_same_zip(offline, model: Path, tmp_path: Path) -> None:
    offline(numpy=1000)
    first = build(model, tmp_path / "a.zip", python="3.11", cache=tmp_path / "cache")
    second = build(model, tmp_path / "b.zip", python="3.11", cache=tmp_path / "cache")
    assert first.path.read_bytes() == second.path.read_bytes()


def test_over_the_limit_nothing_is_written(offline, model: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    offline(numpy=300_000)
    monkeypatch.setattr(lambda_zip, "ZIPPED_LIMIT", 200_000)
    out = tmp_path / "fn.zip"
    with pytest.raises(PackageTooLarge, match="zipped"):
        build(model, out, python="3.11", cache=tmp_path / "cache")
    assert not out.exists() and list(tmp_path.glob(".lambda-build.*")) == []


def test_a_training_library_in_the_dependencies_is_refused(offline, model: Path, tmp_path: Path) -> None:
    offline(numpy=10, sklearn=10)
    with pytest.raises(PackagingError, match="sklearn"):
        build(model, tmp_path / "fn.zip", python="3.11", cache=tmp_path / "cache")


def test_a_damaged_bundle_stops_the_build(offline, model: Path, tmp_path: Path) -> None:
    offline(numpy=10)
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "bundle.json").write_text("{}")
    with pytest.raises(Exception, match="bundle"):
        build(broken, tmp_path / "fn.zip", python="3.11", cache=tmp_path / "cache")
    assert not (tmp_path / "fn.zip").exists()


def test_an_unknown_runtime_is_refused(model: Path, tmp_path: Path) -> None:
    with pytest.raises(PackagingError, match="3.11, 3.12"):
        build(model, tmp_path / "fn.zip", python="3.9", cache=tmp_path / "cache")


def test_a_build_python_of_another_version_is_refused(model: Path, tmp_path: Path) -> None:
    """Its headers would give a kernel named for the runtime but built for another ABI."""
    ours = "%d.%d" % sys.version_info[:2]
    other = "3.12" if ours == "3.11" else "3.11"
    with pytest.raises(PackagingError, match=rf"not a Python {other} .*it says {ours}"):
        build(model, tmp_path / "fn.zip", python=other, build_python=Path(sys.executable), cache=tmp_path / "cache")


def test_the_command_prints_both_sizes_against_the_limits(offline, model: Path, tmp_path: Path) -> None:
    offline(numpy=1000)
    out = tmp_path / "fn.zip"
    result = CliRunner().invoke(app, ["package-lambda", "--model", str(model), "--out", str(out), "--python-version", "3.11"],
                                env={"COLUMNS": "120", "FRAUDSTREAM_CACHE": str(tmp_path / "cache")})
    assert result.exit_code == 0, result.output
    assert re.search(r"zipped\s+│\s+[\d,]+ \([\d.]+ MB\)\s+│\s+50\.0 MB", result.output), result.output
    assert re.search(r"unzipped\s+│\s+[\d,]+ \([\d.]+ MB\)\s+│\s+250\.0 MB", result.output), result.output
    assert out.exists()


def test_the_command_refuses_a_package_over_the_limit_in_one_line(
    offline, model: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    offline(numpy=300_000)
    monkeypatch.setattr(lambda_zip, "ZIPPED_LIMIT", 200_000)
    monkeypatch.setattr(sys, "argv", ["fraudstream", "package-lambda", "--model", str(model), "--out",
                                      str(tmp_path / "fn.zip"), "--python-version", "3.11"])
    with pytest.raises(SystemExit) as exit_info:
        main()
    assert exit_info.value.code == PackageTooLarge.exit_code
    lines = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error:")]
    assert len(lines) == 1 and "over Lambda's limits: zipped" in lines[0] and "> 0.2 MB" in lines[0]
    assert not (tmp_path / "fn.zip").exists()


class FakeSecrets:
    """A Secrets Manager client that knows one secret, and records what it was asked."""

    def __init__(self) -> None:
        self.asked: list[str] = []

    def get_secret_value(self, SecretId: str) -> dict[str, str]:
        self.asked.append(SecretId)
        if SecretId != "arn:keys":
            raise LookupError("ResourceNotFoundException")
        return {"SecretString": "key-one,key-two"}


def test_api_keys_come_from_the_secret_named_by_the_environment() -> None:
    client = FakeSecrets()
    settings = lambda_function.lambda_settings({"FRAUDSTREAM_API_KEYS_SECRET_ARN": "arn:keys"}, client=client)
    assert settings.api.keys is not None and settings.api.keys.get_secret_value() == "key-one,key-two"
    assert client.asked == ["arn:keys"]


def test_keys_already_in_the_environment_are_not_fetched() -> None:
    client = FakeSecrets()
    environ = {"FRAUDSTREAM_API_KEYS_SECRET_ARN": "arn:keys", "FRAUDSTREAM_API_KEYS": "local"}
    settings = lambda_function.lambda_settings(environ, client=client)
    assert settings.api.keys is not None and settings.api.keys.get_secret_value() == "local"
    assert client.asked == []


def test_an_unreadable_secret_is_named_without_its_value() -> None:
    from fraudstream.model.errors import ServiceError

    with pytest.raises(ServiceError, match="arn:missing") as error:
        lambda_function.secrets({"FRAUDSTREAM_API_LABEL_KEYS_SECRET_ARN": "arn:missing"}, FakeSecrets())
    assert "key-one" not in str(error.value)


def test_the_packaged_bundle_is_the_model_unless_the_environment_names_one(tmp_path: Path) -> None:
    packaged = tmp_path / "bundle"
    assert lambda_function.lambda_settings({}, bundle=packaged).paths.model == packaged
    named = lambda_function.lambda_settings({"FRAUDSTREAM_MODEL": "/opt/model"}, bundle=packaged)
    assert named.paths.model == Path("/opt/model")


def test_importing_the_handler_module_starts_nothing() -> None:
    assert "lambda_handler" not in vars(lambda_function)  # built on first access, at the container's init
