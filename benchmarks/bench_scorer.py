"""Benchmark the sklearn-free forest scorer against scikit-learn's own score_samples, then every registered detector.

Measures batch throughput, single-row latency and the cold start of loading a model bundle,
on one core, and writes benchmarks/results/scorer.json. The second part trains each registered
kind (``evidence`` with and without labels) through ``train_bundle`` on generated transactions,
saves and loads the bundle, and measures the served detector the same way.

    .venv/bin/python benchmarks/bench_scorer.py [--quick]
"""

from __future__ import annotations

import os

# One core for every library, set before numpy loads its thread pools.
for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_var] = "1"

import argparse
import json
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import sklearn
from rich.console import Console
from rich.table import Table
from sklearn.ensemble import IsolationForest

from fraudstream.model.bundle import ModelBundle, save_bundle
from fraudstream.model.detectors.forest import CompiledForest, c_available
from fraudstream.model.detectors.isolation_forest import IsolationForestDetector

RESULTS = Path(__file__).parent / "results" / "scorer.json"
N_FEATURES = 30
N_TREES = 100

COLD_LOAD = """
import time
start = time.perf_counter()
from fraudstream.model.bundle import load_bundle
bundle = load_bundle({path!r})
bundle.score_one([0.0] * len(bundle.feature_names))
print((time.perf_counter() - start) * 1000)
"""


def synthetic_data(rng: np.random.Generator, n_rows: int) -> np.ndarray:
    """Skewed, mixed-scale columns, roughly like transaction features (amounts, counts, flags)."""
    amounts = rng.lognormal(3.0, 1.2, size=(n_rows, 10))
    counts = rng.poisson(3.0, size=(n_rows, 10)).astype(float)
    ratios = rng.normal(0.0, 1.0, size=(n_rows, 8))
    flags = rng.integers(0, 2, size=(n_rows, 2)).astype(float)
    return np.hstack([amounts, counts, ratios, flags])


def median_seconds(fn: Callable[[], object], repeats: int) -> float:
    fn()  # warm caches and lazy imports
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def latency_us(score_one: Callable[[Any], float], rows: list[list[float]], calls: int) -> dict[str, float]:
    for row in rows[:50]:
        score_one(row)
    samples = []
    clock = time.perf_counter_ns
    for i in range(calls):
        row = rows[i % len(rows)]
        start = clock()
        score_one(row)
        samples.append(clock() - start)
    samples.sort()
    return {
        "p50_us": samples[len(samples) // 2] / 1000,
        "p99_us": samples[min(len(samples) - 1, int(len(samples) * 0.99))] / 1000,
        "calls": calls,
    }


def cold_load_ms(bundle_dir: Path, runs: int) -> dict[str, float]:
    inside, wall = [], []
    for _ in range(runs):
        start = time.perf_counter()
        out = subprocess.run(
            [sys.executable, "-c", COLD_LOAD.format(path=str(bundle_dir))],
            check=True,
            capture_output=True,
            text=True,
            env=os.environ.copy(),
        )
        wall.append((time.perf_counter() - start) * 1000)
        inside.append(float(out.stdout.strip()))
    return {"import_and_load_ms": statistics.median(inside), "process_wall_ms": statistics.median(wall), "runs": runs}


def per_kind(quick: bool) -> dict[str, Any]:
    """Every registered detector as served: bundle saved and loaded, batch rows/s, score_one latency, cold start."""
    from fraudstream.model.bundle import load_bundle
    from fraudstream.model.detectors import registry
    from fraudstream.model.schema import validate
    from fraudstream.model.train import feature_matrix, known_labels, make_detector, train_bundle
    from fraudstream.services.sources.generator import GeneratorConfig, generate

    txns = [validate(r) for r in generate(GeneratorConfig(cards=1_000 if quick else 3_000, days=14, seed=2))]
    X, y = feature_matrix(txns), known_labels(txns)
    cut = len(X) * 2 // 3
    cases = {kind: (kind, None) for kind in registry.kinds()}
    cases["evidence"] = ("evidence", None)  # no labels: the evidence forest
    cases["evidence[labels]"] = ("evidence", y[:cut] if y is not None else None)  # weighted by the frauds
    out: dict[str, Any] = {"train_rows": cut, "test_rows": len(X) - cut}
    test = X[cut:]
    rows = test[:1000].tolist()
    for name, (kind, labels) in cases.items():
        with tempfile.TemporaryDirectory() as tmp:
            trained = train_bundle(X[:cut], created_at="bench", labels=labels, detector=make_detector(kind))
            directory = save_bundle(trained, Path(tmp) / "bundle")
            bundle = load_bundle(directory)
            seconds = median_seconds(lambda bundle=bundle: bundle.score_many(test), 3 if quick else 7)
            detector_meta = trained.metadata["detector"]
            out[name] = {
                "kind": kind,
                "mode": detector_meta.get("mode"),
                "batch_rows_per_s": len(test) / seconds,
                "single_row": latency_us(bundle.score_one, rows, 2_000 if quick else 20_000),
                "cold_start": cold_load_ms(directory, 3 if quick else 5),
                "bundle_kb": sum(f.stat().st_size for f in directory.iterdir()) / 1024,
            }
    return out


def run(quick: bool) -> dict[str, Any]:
    rng = np.random.default_rng(0)
    train = synthetic_data(rng, 20_000)
    test = synthetic_data(rng, 5_000 if quick else 50_000)
    repeats = 3 if quick else 7
    estimator = IsolationForest(n_estimators=N_TREES, random_state=0, n_jobs=1).fit(train)
    reference = -estimator.score_samples(test)
    forests = {"c": CompiledForest.from_sklearn(estimator, backend="c")} if c_available() else {}
    forests["numpy"] = CompiledForest.from_sklearn(estimator, backend="numpy")

    batch: dict[str, Any] = {"rows": len(test)}
    sk_seconds = median_seconds(lambda: estimator.score_samples(test), repeats)
    batch["sklearn_rows_per_s"] = len(test) / sk_seconds
    for name, forest in forests.items():
        seconds = median_seconds(lambda forest=forest: forest.score_many(test), repeats)
        batch[f"{name}_rows_per_s"] = len(test) / seconds
        batch[f"{name}_vs_sklearn"] = sk_seconds / seconds
        batch[f"{name}_max_abs_diff"] = float(np.abs(forest.score_many(test) - reference).max())

    rows = test[:1000].tolist()
    single: dict[str, Any] = {}
    for name, forest in forests.items():
        single[name] = latency_us(forest.score_one, rows, 2_000 if quick else (20_000 if name == "c" else 5_000))
    single["sklearn"] = latency_us(lambda row: estimator.score_samples([row]), rows, 30 if quick else 300)

    with tempfile.TemporaryDirectory() as tmp:
        detector = IsolationForestDetector.from_forest(forests["numpy"])
        bundle = ModelBundle(detector, tuple(f"f{i}" for i in range(N_FEATURES)), 0.6, {"version": "bench"})
        bundle_dir = save_bundle(bundle, Path(tmp) / "bundle")
        cold = cold_load_ms(bundle_dir, 3 if quick else 5)

    return {
        "settings": {
            "quick": quick,
            "n_trees": N_TREES,
            "n_features": N_FEATURES,
            "train_rows": len(train),
            "repeats": repeats,
        },
        "machine": {
            "python": platform.python_version(),
            "platform": platform.platform(),
            "cpus": os.cpu_count(),
            "numpy": np.__version__,
            "sklearn": sklearn.__version__,
            "c_kernel": c_available(),
        },
        "batch": batch,
        "single_row": single,
        "cold_start": cold,
        "detectors": per_kind(quick),
    }


def show(results: dict[str, Any]) -> None:
    console = Console()
    batch = results["batch"]
    table = Table(title=f"Batch scoring, {batch['rows']} rows, {N_TREES} trees, 1 core")
    for column in ("scorer", "rows/s", "vs sklearn", "max |diff|"):
        table.add_column(column, justify="right")
    table.add_row("sklearn", f"{batch['sklearn_rows_per_s']:,.0f}", "1.00x", "-")
    for name in ("c", "numpy"):
        if f"{name}_rows_per_s" in batch:
            table.add_row(
                name,
                f"{batch[f'{name}_rows_per_s']:,.0f}",
                f"{batch[f'{name}_vs_sklearn']:.2f}x",
                f"{batch[f'{name}_max_abs_diff']:.1e}",
            )
    console.print(table)
    table = Table(title="score_one latency (list of floats)")
    for column in ("scorer", "p50 us", "p99 us", "calls"):
        table.add_column(column, justify="right")
    for name, stats in results["single_row"].items():
        table.add_row(name, f"{stats['p50_us']:.1f}", f"{stats['p99_us']:.1f}", str(stats["calls"]))
    console.print(table)
    cold = results["cold_start"]
    console.print(
        f"cold import + load_bundle: {cold['import_and_load_ms']:.0f} ms median "
        f"(whole process {cold['process_wall_ms']:.0f} ms, {cold['runs']} runs)"
    )
    kinds = results["detectors"]
    table = Table(title=f"Served detectors (bundle saved and loaded), {kinds['test_rows']:,} generated rows, 1 core")
    for column in ("detector", "mode", "batch rows/s", "p50 us", "p99 us", "cold start ms", "bundle KB"):
        table.add_column(column, justify="right")
    for name, m in kinds.items():
        if not isinstance(m, dict):
            continue
        table.add_row(name, str(m["mode"] or "-"), f"{m['batch_rows_per_s']:,.0f}", f"{m['single_row']['p50_us']:.1f}",
                      f"{m['single_row']['p99_us']:.1f}", f"{m['cold_start']['import_and_load_ms']:.0f}",
                      f"{m['bundle_kb']:.0f}")
    console.print(table)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small, fast smoke run")
    args = parser.parse_args()
    results = run(args.quick)
    show(results)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=2) + "\n")
    Console().print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
