"""The artefact: ``fraudstream package-lambda`` builds the zip for Lambda's python3.12 x86_64 runtime, and the
unpacked zip, run by a Python 3.12 that sees nothing else (no site-packages, only the zip and the runtime
client Lambda provides), answers API Gateway events under the real emulator with the C kernel and the
same scores as the in-process scorer.

Needs a Python 3.12 interpreter on this machine (``python3.12`` on PATH or pyenv's) and pip's access to the
package index for the first build (later builds reuse the cache under $FRAUDSTREAM_CACHE).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from lambda_rie import SHAPES, Emulator, api_event, build_rie, running, train_small_model
from support import BASE, BIN, T0, make_txn

from fraudstream.model.bundle import load_bundle
from fraudstream.model.scoring import Scorer
from fraudstream.services.cli.package_lambda import cache_root
from fraudstream.services.packaging.lambda_zip import (
    FORBIDDEN, RUNTIMES, UNZIPPED_LIMIT, ZIPPED_LIMIT, find_python, install_dependencies,
)

pytestmark = [pytest.mark.integration, pytest.mark.slow]

KEY = "package-test-key-0123456789"
RUNTIME = RUNTIMES["3.12"]
KERNEL = "fraudstream/model/detectors/_forest" + RUNTIME.ext_suffix


@pytest.fixture(scope="module")
def python312() -> Path:
    found = find_python("3.12")
    if found is None:
        pytest.skip("no Python 3.12 on this machine (python3.12 on PATH or pyenv's) to run the python3.12 package")
    return found


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory, python312: Path) -> dict[str, Any]:
    """The model, the zip built by the command, its output, and the zip unpacked as Lambda's /var/task."""
    root = tmp_path_factory.mktemp("package")
    model = train_small_model(root)
    out = root / "function.zip"
    done = subprocess.run([str(BIN), "package-lambda", "--model", str(model), "--out", str(out)],
                          capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=1800,
                          env={**os.environ, "COLUMNS": "120"})
    assert done.returncode == 0, done.stderr
    task = root / "task"
    with zipfile.ZipFile(out) as archive:
        archive.extractall(task)
    return {"root": root, "model": model, "zip": out, "task": task, "output": done.stderr + done.stdout}


@pytest.fixture(scope="module")
def runtime_client() -> Path:
    """awslambdaric for Python 3.12, as Lambda's managed runtime has it (outside the zip)."""
    import importlib.metadata

    return install_dependencies([f"awslambdaric=={importlib.metadata.version('awslambdaric')}"], RUNTIME, cache_root())


def lambda_env(built: dict[str, Any], runtime_client: Path, **extra: str) -> dict[str, str]:
    """What the function sees: its settings and a path of the task root then the runtime client, nothing else."""
    return {"PATH": os.environ["PATH"], "HOME": os.environ.get("HOME", "/tmp"), "LANG": "C.UTF-8",
            "PYTHONPATH": f"{built['task']}:{runtime_client}", "LAMBDA_TASK_ROOT": str(built["task"]),
            "FRAUDSTREAM_CARD_ID_KEY": os.environ["FRAUDSTREAM_CARD_ID_KEY"], **extra}


def run_python(python: Path, code: str, env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    # -S: no site-packages of this interpreter, so only the zip (and the runtime client) can be imported
    return subprocess.run([str(python), "-S", "-c", code], capture_output=True, text=True, env=env, cwd=cwd,
                          stdin=subprocess.DEVNULL, timeout=300)


def test_the_command_prints_the_sizes_within_the_limits(built: dict[str, Any]) -> None:
    zipped = re.search(r"zipped\s+│\s+([\d,]+) ", built["output"])
    unzipped = re.search(r"unzipped\s+│\s+([\d,]+) ", built["output"])
    assert zipped and unzipped, built["output"]
    assert int(zipped[1].replace(",", "")) == built["zip"].stat().st_size <= ZIPPED_LIMIT
    assert int(unzipped[1].replace(",", "")) <= UNZIPPED_LIMIT
    assert "scorer: C kernel" in built["output"], built["output"]


def test_the_zip_holds_the_handler_bundle_and_kernel_and_no_training_or_streaming_library(built: dict[str, Any]) -> None:
    names = set(zipfile.ZipFile(built["zip"]).namelist())
    assert {"lambda_function.py", "bundle/bundle.json", KERNEL, "mangum/__init__.py", "fastapi/__init__.py"} <= names
    tops = {n.split("/")[0] for n in names}
    assert not tops & {*FORBIDDEN, "awslambdaric", "uvicorn", "grpc", "boto3"}, sorted(tops)


def test_the_unpacked_zip_imports_with_the_c_kernel_and_nothing_from_outside(built: dict[str, Any], python312: Path,
                                                                             runtime_client: Path) -> None:
    code = """
import importlib, json, sys
import fraudstream.model.detectors.forest as forest
import fraudstream.services.stores.alerts.opensearch  # the OpenSearch store, without the pruned gRPC parts
import opensearchpy
missing = []
for name in ("sklearn", "pandas", "kafka", "elasticsearch", "uvicorn", "grpc"):
    try:
        importlib.import_module(name)
    except ModuleNotFoundError:
        missing.append(name)
print(json.dumps({"c": forest.c_available(), "file": forest.__file__, "missing": missing,
                  "version": list(sys.version_info[:2])}))
"""
    done = run_python(python312, code, lambda_env(built, runtime_client), built["task"])
    assert done.returncode == 0, done.stderr
    found = json.loads(done.stdout)
    assert found["version"] == [3, 12]
    assert found["c"] is True
    assert Path(found["file"]).is_relative_to(built["task"])
    assert found["missing"] == ["sklearn", "pandas", "kafka", "elasticsearch", "uvicorn", "grpc"]


@pytest.fixture(scope="module")
def packaged(built: dict[str, Any], python312: Path, runtime_client: Path) -> Iterator[Emulator]:
    """The unpacked zip's lambda_function.lambda_handler under the emulator, run by Python 3.12 -S."""
    env = lambda_env(built, runtime_client, FRAUDSTREAM_API_KEYS=KEY,
                     FRAUDSTREAM_STORE=f"sqlite://{built['root'] / 'alerts.db'}")
    with running(build_rie(), "lambda_function.lambda_handler", cwd=built["task"], log=built["root"] / "emulator.log",
                 python=(str(python312), "-S"), env=env) as emulator:
        yield emulator


def txn(n: int, **fields: Any) -> dict[str, Any]:
    return {**BASE, "transaction_id": f"pkg-{n}", "timestamp": T0 + n * 60_000, **fields}


def reply_of(emulator: Emulator, event: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    status, reply = emulator.invoke(event)
    assert status == 200 and "statusCode" in reply, f"{reply}\n{emulator.tail()}"
    return reply["statusCode"], json.loads(reply["body"])


@pytest.mark.parametrize("shape", SHAPES)
def test_the_packaged_handler_answers_good_bad_and_unauthenticated_events(packaged: Emulator, shape: str) -> None:
    n = 10 * (1 + SHAPES.index(shape))
    status, body = reply_of(packaged, api_event(shape, "POST", "/v1/score", txn(n), key=KEY))
    assert status == 200 and 0.0 <= body["score"] <= 1.0, body
    status, body = reply_of(packaged, api_event(shape, "POST", "/v1/score", txn(n + 1, amount=-5.0), key=KEY))
    assert status == 422 and body["field"] == "amount", body
    status, body = reply_of(packaged, api_event(shape, "POST", "/v1/score", txn(n + 2)))
    assert status == 401 and body == {"error": "unauthorized"}


def test_the_packaged_handler_scores_a_card_history_as_the_in_process_scorer_does(packaged: Emulator,
                                                                                  built: dict[str, Any]) -> None:
    """A batch carrying one new card's history through its state: the same scores as this environment's Scorer."""
    history = [txn(100 + i, card_id="card-pkg", merchant_id="m-pkg", amount=amount) for i, amount in enumerate([12.0, 15.5, 11.0, 980.0, 14.0])]
    status, body = reply_of(packaged, api_event("http-v2", "POST", "/v1/score/batch", {"transactions": history}, key=KEY))
    assert status == 200, body
    expected = Scorer(load_bundle(built["model"])).decide_batch(
        [make_txn(0, t["timestamp"], **{k: v for k, v in t.items() if k != "timestamp"}) for t in history])
    assert [r["transaction_id"] for r in body["results"]] == [d.transaction_id for d in expected]
    assert [r["score"] for r in body["results"]] == pytest.approx([d.score for d in expected], rel=1e-9, abs=1e-12)
    assert [r["alert"] for r in body["results"]] == [d.alert for d in expected]


def test_python311_is_refused_because_numpy_has_no_wheel_for_amazon_linux_2(built: dict[str, Any], tmp_path: Path) -> None:
    """Lambda's python3.11 runs on Amazon Linux 2 (glibc 2.26); the pinned numpy's wheels need glibc 2.27+."""
    from fraudstream.services.packaging.lambda_zip import PackagingError, build

    out = tmp_path / "function.zip"
    with pytest.raises(PackagingError, match=r"numpy.*glibc 2\.26|glibc 2\.26.*numpy|Amazon Linux 2, glibc 2\.26") as error:
        build(built["model"], out, python="3.11", cache=cache_root())
    assert "numpy" in str(error.value) and not out.exists()
