"""A base install (no extras) runs the core and the CLI, and a feature that needs an extra says which one.

The fresh virtual environment holds only the project and the closure of its base dependencies
(pyproject.toml's ``dependencies``), linked from this test environment's installed copies rather
than downloaded again, plus the project itself as ``pip install --no-deps -e .`` leaves it. So
Kafka, Elasticsearch, OpenSearch, Streamlit, pandas and scikit-learn are really absent.
"""

from __future__ import annotations

import importlib.metadata as metadata
import os
import subprocess
import sys
import sysconfig
import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from support import BIN, ROOT, free_port

pytestmark = pytest.mark.slow  # about 30 s: a venv, a model trained with the full install, a dozen commands

OPTIONAL = ["kafka", "crc32c", "elasticsearch", "opensearchpy", "streamlit", "altair", "pandas", "sklearn", "scipy"]


def base_closure() -> list[metadata.Distribution]:
    """The installed distributions that the base dependencies need, transitively (no extras)."""
    todo = [Requirement(r) for r in tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]]
    found: dict[str, metadata.Distribution] = {}
    while todo:
        requirement = todo.pop()
        key = requirement.name.lower().replace("_", "-")
        if key in found:
            continue
        found[key] = dist = metadata.distribution(requirement.name)
        for text in dist.requires or []:
            dependency = Requirement(text)
            if dependency.marker is None or dependency.marker.evaluate({"extra": ""}):
                todo.append(dependency)
    return list(found.values())


def link_distribution(dist: metadata.Distribution, site: Path) -> None:
    """Make ``dist`` importable in ``site`` by linking its top-level entries (packages, modules, dist-info)."""
    source = Path(str(dist.locate_file("")))
    for top in {Path(str(f)).parts[0] for f in dist.files or [] if not str(f).startswith("..")}:
        if not (site / top).exists() and (source / top).exists():
            (site / top).symlink_to(source / top)


@pytest.fixture(scope="module")
def base_env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("base")
    venv = root / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    site = Path(sysconfig.get_path("purelib", vars={"base": str(venv), "platbase": str(venv)}))
    for dist in base_closure():
        link_distribution(dist, site)
    # The project, --no-deps: what an editable install leaves in site-packages (its path hook and metadata).
    here = Path(sysconfig.get_path("purelib"))
    for entry in here.iterdir():
        if entry.name.startswith(("__editable__.fraudstream", "__editable___fraudstream", "fraudstream-")):
            (site / entry.name).symlink_to(entry)
    python = venv / "bin" / "python"
    cli = venv / "bin" / "fraudstream"
    cli.write_text(f"#!{python}\nimport sys\nfrom fraudstream.services.cli import main\nsys.exit(main())\n")
    cli.chmod(0o755)
    # A bundle and data made with the full install (training needs the [train] extra).
    data, model = root / "data.csv", root / "model"
    for args in (["generate", "--out", data, "--cards", "200", "--days", "3", "--seed", "3"],
                 ["train", "--data", data, "--model-out", model]):
        done = subprocess.run([str(BIN), *map(str, args)], capture_output=True, text=True)
        assert done.returncode == 0, done.stderr
    return {"root": root, "python": python, "cli": cli, "data": data, "model": model}


def run(env: dict[str, Path], *args: object) -> subprocess.CompletedProcess[str]:
    clean = {"PATH": os.environ.get("PATH", ""), "COLUMNS": "200", "HOME": str(env["root"])}
    return subprocess.run([str(a) for a in args], capture_output=True, text=True, env=clean, cwd=env["root"], timeout=300)


def check_hint(done: subprocess.CompletedProcess[str], hint: str) -> None:
    assert done.returncode == 5, (done.stdout, done.stderr)
    assert "Traceback" not in done.stderr
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert lines[-1] == f"error: {hint}"  # after what the command printed before it got there (progress...)
    assert [line for line in lines if "error" in line.lower()] == [f"error: {hint}"]


def test_the_optional_libraries_are_absent(base_env: dict[str, Path]) -> None:
    """Without this the other tests of this module could not fail."""
    code = "import importlib.util as u, sys; print(','.join(m for m in sys.argv[1:] if u.find_spec(m)))"
    done = run(base_env, base_env["python"], "-c", code, "numpy", "typer", *OPTIONAL)
    assert done.stdout.strip() == "numpy,typer", done.stderr


def test_the_core_imports_without_extras(base_env: dict[str, Path]) -> None:
    code = ("import sys, fraudstream.model.bundle, fraudstream.model.scoring, fraudstream.services.cli; "
            f"print(sorted({{m.split('.')[0] for m in sys.modules}} & set({OPTIONAL!r})))")
    done = run(base_env, base_env["python"], "-c", code)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


def test_help(base_env: dict[str, Path]) -> None:
    done = run(base_env, base_env["cli"], "--help")
    assert done.returncode == 0, done.stderr
    assert "score" in done.stdout and "Exit codes" in done.stdout


def test_score_with_an_existing_bundle(base_env: dict[str, Path]) -> None:
    out = base_env["root"] / "scores.csv"
    done = run(base_env, base_env["cli"], "score", "--data", base_env["data"], "--model", base_env["model"], "--out", out)
    assert done.returncode == 0, done.stderr
    assert len(out.read_text().splitlines()) > 100


def test_generate_and_run_a_file(base_env: dict[str, Path]) -> None:
    data = base_env["root"] / "more.jsonl"
    assert run(base_env, base_env["cli"], "generate", "--out", data, "--cards", "50", "--days", "1").returncode == 0
    done = run(base_env, base_env["cli"], "run", "--source", "file", "--data", data, "--model", base_env["model"],
               "--store", base_env["root"] / "alerts.db", "--no-live-view")
    assert done.returncode == 0, done.stderr
    assert "finished" in done.stderr


@pytest.mark.parametrize(
    ("args", "hint"),
    [
        pytest.param(["run", "--source", "kafka", "--store", "memory://", "--no-live-view"],
                     "the Kafka runner needs kafka, which is not installed: pip install 'fraudstream[kafka]'", id="run-kafka"),
        pytest.param(["produce", "--data", "DATA"],
                     "fraudstream produce needs kafka, which is not installed: pip install 'fraudstream[kafka]'", id="produce"),
        pytest.param(["run", "--source", "file", "--data", "DATA", "--store", "opensearch://127.0.0.1:9", "--no-live-view"],
                     "the OpenSearch alert store needs opensearchpy, which is not installed: pip install 'fraudstream[search]'",
                     id="run-opensearch"),
        pytest.param(["train", "--data", "DATA", "--model-out", "new-model"],
                     "training an Isolation Forest needs sklearn, which is not installed: pip install 'fraudstream[train]'", id="train"),
        pytest.param(["dashboard", "--port", str(free_port())],  # a valid port; nothing binds it without streamlit
                     "the dashboard needs streamlit, which is not installed: pip install 'fraudstream[dashboard]'", id="dashboard"),
    ],
)
def test_a_feature_without_its_extra_says_what_to_install(args: list[str], hint: str, base_env: dict[str, Path]) -> None:
    argv = [base_env["data"] if a == "DATA" else a for a in args]
    if args[0] in ("run", "score"):
        argv += ["--model", base_env["model"]]
    check_hint(run(base_env, base_env["cli"], *argv), hint)
