"""A non-editable install from the wheel works on its own: presets, the C kernel and the published formats.

The editable install of ``scripts/install`` reads files straight from the checkout, so it cannot show
that the wheel forgot one. Here the project (the files git would give a clone) is built with
``pip wheel``, installed into a fresh virtual environment without touching the network (the
dependencies are borrowed from this environment's site-packages, without its editable finder), and
its own ``fraudstream`` command generates, trains and scores ``--format sparkov`` and ``handbook``.
"""

from __future__ import annotations

import csv
import os
import re
import shutil
import subprocess
import sys
import sysconfig
import venv
import zipfile
from pathlib import Path

import pytest

from fraudstream.model.detectors.forest import c_available

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = ROOT / "tests" / "fixtures"
SKIP_DIRS = {".git", ".venv", "var", "build", "dist", "__pycache__", ".pytest_cache", ".hypothesis"}

pytestmark = pytest.mark.slow  # building the wheel compiles the C kernel: 17 s on an idle 2-core machine, more under load


def project_files() -> list[Path]:
    """What a clone holds: the files git tracks plus new ones it does not ignore (or, without git, a filtered walk)."""
    try:
        listed = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=ROOT,
                                check=True, capture_output=True).stdout.decode().split("\0")
        return [Path(name) for name in listed if name and (ROOT / name).is_file()]
    except (OSError, subprocess.CalledProcessError):
        return [p.relative_to(ROOT) for p in ROOT.rglob("*")
                if p.is_file() and not SKIP_DIRS & set(p.relative_to(ROOT).parts) and p.suffix not in (".so", ".pyc")]


def run(*args: str | Path, cwd: Path, **kwargs) -> subprocess.CompletedProcess[str]:
    result = subprocess.run([str(a) for a in args], cwd=cwd, capture_output=True, text=True, timeout=600, **kwargs)
    assert result.returncode == 0, f"{args}\nstdout:\n{result.stdout}\nstderr:\n{result.stderr}"
    return result


@pytest.fixture(scope="module")
def wheel_env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Build the wheel from a copy of the project, install it alone into a new venv; return the paths."""
    root = tmp_path_factory.mktemp("wheel")
    source, wheels, env = root / "source", root / "wheels", root / "venv"
    for name in project_files():
        (source / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / name, source / name)
    built = run(sys.executable, "-m", "pip", "wheel", "--no-deps", "-w", wheels, source, cwd=root)
    (wheel,) = wheels.glob("fraudstream-*.whl")
    venv.EnvBuilder(with_pip=False).create(env)
    python = env / "bin" / "python"
    run(sys.executable, "-m", "pip", "--python", python, "install", "--no-deps", "--no-index", "--quiet", wheel, cwd=root)
    site = Path(run(python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])", cwd=root).stdout.strip())
    # The dependencies from this environment, appended after the wheel's own files; a path named in a
    # .pth file is not scanned for .pth files, so the editable install's finder stays out.
    (site / "dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    return {"root": root, "wheel": wheel, "python": python, "bin": env / "bin" / "fraudstream",
            "build_log": built.stdout + built.stderr}


def test_the_build_says_nothing_to_worry_a_newcomer(wheel_env) -> None:
    # setuptools warned that the presets folder was missing from the packages and that the license table is deprecated
    warnings = re.findall(r"^.*\w+Warning\b.*$", wheel_env["build_log"], re.MULTILINE)
    assert warnings == [], wheel_env["build_log"]


def test_the_wheel_holds_the_presets_the_kernel_and_every_package(wheel_env: dict[str, Path]) -> None:
    names = set(zipfile.ZipFile(wheel_env["wheel"]).namelist())
    assert {"fraudstream/services/sources/presets/sparkov.toml", "fraudstream/services/sources/presets/handbook.toml"} <= names
    if c_available():  # the C kernel is optional, but what the editable install compiled the wheel must carry
        assert any(n.startswith("fraudstream/model/detectors/_forest") and n.endswith((".so", ".pyd")) for n in names)
    packages = {p.parent.relative_to(ROOT).as_posix() for p in ROOT.glob("*/**/__init__.py")
                if p.parts[len(ROOT.parts)] in ("model", "services", "dashboard", "operator")}
    missing = [p for p in packages if f"fraudstream/{p}/__init__.py" not in names]
    assert missing == []


def test_the_installed_command_imports_from_the_wheel_with_the_c_kernel(wheel_env: dict[str, Path]) -> None:
    out = run(wheel_env["python"], "-c",
              "import fraudstream.services, fraudstream.model.detectors.forest as f; "
              "print(fraudstream.services.__file__); print(f.c_available())",
              cwd=wheel_env["root"], env={**os.environ, "PYTHONPATH": ""}).stdout.split()
    assert Path(out[0]).is_relative_to(wheel_env["python"].parents[1])  # the venv, not the checkout
    assert out[1] == str(c_available())


@pytest.mark.parametrize(("fmt", "sample"), [("sparkov", "sparkov_sample.csv"), ("handbook", "handbook_sample.csv")])
def test_the_installed_command_trains_and_scores_the_published_formats(wheel_env: dict[str, Path], fmt: str, sample: str) -> None:
    work, cli = wheel_env["root"], wheel_env["bin"]
    model = work / "model"
    if not (model / "bundle.json").exists():
        run(cli, "generate", "--out", work / "history.csv", "--cards", "200", "--days", "3", "--seed", "2", cwd=work)
        run(cli, "train", "--data", work / "history.csv", "--model-out", model, cwd=work)
    out = work / f"{fmt}.scores.csv"
    run(cli, "score", "--data", FIXTURES / sample, "--format", fmt, "--model", model, "--out", out,
        "--dead-letters", work / f"{fmt}.dead_letters.jsonl", cwd=work)
    with open(FIXTURES / sample, newline="") as handle:
        expected = sum(1 for _ in csv.DictReader(handle))
    with open(out, newline="") as handle:
        scored = list(csv.DictReader(handle))
    assert len(scored) == expected > 0
    assert all(0.0 <= float(row["score"]) <= 1.0 for row in scored)
