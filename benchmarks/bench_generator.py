"""Benchmark the synthetic generator: rows per second generated, and written to CSV / JSON Lines.

Run ``python benchmarks/bench_generator.py [--quick]``; prints a table and writes
``benchmarks/results/generator.json``. Each figure is the best of a few repeats on one core.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict
from functools import partial
from pathlib import Path

from fraudstream.services.sources.generator import GeneratorConfig, generate, write_transactions

RESULTS = Path(__file__).resolve().parent / "results" / "generator.json"


def best_rate(run: Callable[[], int], repeats: int) -> tuple[int, float]:
    """(rows, best rows per second) over `repeats` runs."""
    best = 0.0
    rows = 0
    for _ in range(repeats):
        began = time.perf_counter()
        rows = run()
        best = max(best, rows / (time.perf_counter() - began))
    return rows, best


def _generate_and_write(config: GeneratorConfig, path: Path) -> int:
    return write_transactions(generate(config), path)


def main(argv: list[str] | None = None) -> dict[str, object]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small run (a few seconds)")
    parser.add_argument("--out", type=Path, default=RESULTS, help="where to write the JSON results")
    args = parser.parse_args(argv)

    config = (GeneratorConfig(cards=2_000, days=10, seed=7) if args.quick
              else GeneratorConfig(cards=10_000, days=30, seed=7))
    repeats = 2
    results: dict[str, object] = {
        "benchmark": "generator",
        "quick": args.quick,
        "config": asdict(config),
        "python": platform.python_version(),
        "machine": platform.machine(),
        "processor": platform.processor() or platform.machine(),
    }
    rows, rate = best_rate(lambda: sum(1 for _ in generate(config)), repeats)
    results["rows"] = rows
    results["generate_rows_per_s"] = round(rate)
    with tempfile.TemporaryDirectory() as tmp:
        for suffix in (".csv", ".csv.gz", ".jsonl", ".jsonl.gz"):
            path = Path(tmp) / f"transactions{suffix}"
            # End to end: generating and writing, as `fraudstream generate --out` does.
            _, rate = best_rate(partial(_generate_and_write, config, path), repeats)
            key = suffix.lstrip(".").replace(".", "_")
            results[f"write_{key}_rows_per_s"] = round(rate)
            results[f"write_{key}_bytes_per_row"] = round(path.stat().st_size / rows, 1)

    print(f"generator benchmark ({'quick' if args.quick else 'full'}): {rows:,} rows, "
          f"{config.cards:,} cards x {config.days} days")
    for key, value in results.items():
        if key.endswith("_rows_per_s"):
            print(f"  {key:<32} {value:>12,}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    tmp_out = args.out.with_name(args.out.name + f".{os.getpid()}.tmp")
    tmp_out.write_text(json.dumps(results, indent=2) + "\n")
    os.replace(tmp_out, args.out)
    print(f"  results written to {args.out}")
    return results


if __name__ == "__main__":
    main(sys.argv[1:])
