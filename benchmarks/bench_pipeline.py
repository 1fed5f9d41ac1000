"""End-to-end embedded pipeline on one core: throughput, arrival-to-decision latency, memory, profile.

Side by side in one process: the feature step alone, read+validate alone (the floor any runner
pays), and the whole run (parse, validate, features, score, alert write to SQLite), from CSV and
JSON Lines. Latency is measured with the live generator at fixed offered rates. Writes
benchmarks/results/pipeline.json.

    .venv/bin/python benchmarks/bench_pipeline.py [--quick]
"""

from __future__ import annotations

import argparse
import cProfile
import gc
import io
import pstats
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from common import median_of, pin_one_core, timed, write_results  # noqa: E402

from fraudstream.model.features import FeatureState  # noqa: E402
from fraudstream.model.schema import validate  # noqa: E402
from fraudstream.model.train import feature_matrix, train_bundle  # noqa: E402
from fraudstream.services.runners.embedded import EmbeddedRunner  # noqa: E402
from fraudstream.services.sources.file_source import FileSource  # noqa: E402
from fraudstream.services.sources.files import read_rows  # noqa: E402
from fraudstream.services.sources.generator import GeneratorConfig, generate, write_transactions  # noqa: E402
from fraudstream.services.sources.generator_source import GeneratorSource  # noqa: E402
from fraudstream.services.stores.alerts.sqlite import SqliteAlertStore  # noqa: E402


def run_once(source, bundle, db: Path, batch_size: int = 2000) -> EmbeddedRunner:
    db.unlink(missing_ok=True)
    runner = EmbeddedRunner(source, bundle, SqliteAlertStore(db), batch_size=batch_size)
    runner.run()
    runner.store.close()
    return runner


def state_memory(cards: int, seed: int) -> dict[str, float]:
    """Bytes of feature state per active card, from tracemalloc over the state alone."""
    txns = [validate(r) for r in generate(GeneratorConfig(cards=cards, days=3, seed=seed))]
    gc.collect()
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    state = FeatureState()
    for t in txns:
        state.step(t)
    after, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    active = len(state.cards)
    return {
        "transactions": len(txns),
        "active_cards": active,
        "merchants": len(state.merchants),
        "state_mb": (after - before) / 2**20,
        "mb_per_100k_cards": (after - before) / 2**20 / active * 100_000,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="small sizes, for a smoke run")
    args = parser.parse_args()
    cpu = pin_one_core()
    cards, days, repeats = (500, 5, 1) if args.quick else (5_000, 14, 3)
    rates = (500, 2_000) if args.quick else (1_000, 5_000, 20_000)
    live_seconds = 1.0 if args.quick else 5.0
    tmp = Path(tempfile.mkdtemp(prefix="fraudstream-bench-"))

    config = GeneratorConfig(cards=cards, days=days, seed=3)
    rows = list(generate(config))
    n = len(rows)
    csv_path, jsonl_path = tmp / "stream.csv", tmp / "stream.jsonl"
    write_transactions(rows, csv_path)
    write_transactions(rows, jsonl_path)
    txns = [validate(r) for r in rows]
    bundle = train_bundle(feature_matrix(txns), created_at="benchmark")

    figures: dict = {"cpu": cpu, "rows": n, "cards": cards, "days": days}
    step_s, _ = median_of(repeats, lambda: timed(lambda: [s.step(t) for s in [FeatureState()] for t in txns]))
    figures["features_per_s"] = n / step_s
    read_s, _ = median_of(repeats, lambda: timed(lambda: [validate(r.data) for r in read_rows(csv_path)]))
    figures["csv_read_validate_per_s"] = n / read_s
    for name, path in (("csv", csv_path), ("jsonl", jsonl_path)):
        run_s, _ = median_of(repeats, lambda: timed(lambda: run_once(FileSource(path), bundle, tmp / "a.db")))
        figures[f"run_{name}_per_s"] = n / run_s
    figures["run_csv_vs_read_validate"] = figures["run_csv_per_s"] / figures["csv_read_validate_per_s"]

    latency = {}
    for rate in rates:
        source = GeneratorSource(GeneratorConfig(cards=cards, days=30, seed=4), rate=rate)
        db = tmp / "live.db"
        db.unlink(missing_ok=True)
        runner = EmbeddedRunner(source, bundle, SqliteAlertStore(db), batch_size=500,
                                on_progress=lambda st, end=time.perf_counter() + live_seconds: runner.stop() if time.perf_counter() > end else None,
                                progress_seconds=0.05)
        stats = runner.run()
        latency[str(rate)] = {
            "offered_per_s": rate,
            "achieved_per_s": stats.rate(),
            "p50_ms": stats.latency_ms(0.5),
            "p99_ms": stats.latency_ms(0.99),
            "rows": stats.counters["read"],
        }
    figures["latency"] = latency
    figures["memory"] = state_memory(20_000 if args.quick else 100_000, seed=5)

    profiler = cProfile.Profile()
    profiler.enable()
    run_once(FileSource(csv_path), bundle, tmp / "p.db")
    profiler.disable()
    out = io.StringIO()
    stats = pstats.Stats(profiler, stream=out)
    total = stats.total_tt  # type: ignore[attr-defined]
    top = sorted(stats.stats.items(), key=lambda kv: kv[1][2], reverse=True)[:12]  # type: ignore[attr-defined]
    figures["profile_top_tottime"] = [
        {"function": f"{Path(f).name}:{line}({fn})", "share": tt / total} for (f, line, fn), (_, _, tt, _, _) in top
    ]

    path = write_results("pipeline", figures)
    print(f"rows: {n:,} ({cards:,} cards × {days} days), cpu {cpu}")
    print(f"feature step alone:          {figures['features_per_s']:>10,.0f} events/s")
    print(f"CSV read + validate alone:   {figures['csv_read_validate_per_s']:>10,.0f} rows/s")
    print(f"run, CSV → SQLite:           {figures['run_csv_per_s']:>10,.0f} rows/s ({figures['run_csv_vs_read_validate']:.2f}× read+validate)")
    print(f"run, JSON Lines → SQLite:    {figures['run_jsonl_per_s']:>10,.0f} rows/s")
    for rate, m in latency.items():
        print(f"live at {int(rate):>6,}/s: achieved {m['achieved_per_s']:>8,.0f}/s, p50 {m['p50_ms']:.2f} ms, p99 {m['p99_ms']:.2f} ms")
    mem = figures["memory"]
    print(f"feature state: {mem['mb_per_100k_cards']:.0f} MB per 100,000 active cards ({mem['active_cards']:,} cards measured)")
    print("where the time goes (share of profiled time):")
    for entry in figures["profile_top_tottime"]:
        print(f"  {entry['share']:6.1%}  {entry['function']}")
    print(f"→ {path}")


if __name__ == "__main__":
    main()
