"""Detection quality of the default model on the generator's data.

Train on the first two thirds of the days, test on the rest; card history is carried through
the whole stream (as in production). Writes benchmarks/results/quality.json.

    .venv/bin/python benchmarks/bench_quality.py [--quick]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from common import pin_one_core, write_results  # noqa: E402

from fraudstream.model.evaluate import evaluate_transactions  # noqa: E402
from fraudstream.model.schema import validate  # noqa: E402
from fraudstream.model.train import feature_matrix, train_bundle  # noqa: E402
from fraudstream.services.sources.generator import GeneratorConfig, generate  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="smaller data, for a smoke run")
    parser.add_argument("--cards", type=int, default=5_000)
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    cards, days = (1_000, 15) if args.quick else (args.cards, args.days)
    pin_one_core()
    config = GeneratorConfig(cards=cards, days=days, seed=args.seed)
    txns = [validate(row) for row in generate(config)]
    X = feature_matrix(txns)
    first_day = txns[0].timestamp_ms // 86_400_000
    day = np.array([t.timestamp_ms // 86_400_000 - first_day for t in txns])
    train = day < (2 * days) // 3
    bundle = train_bundle(X[train], created_at="benchmark")
    test = ~train
    scores = bundle.score_many(X[test])
    test_txns = [t for t, keep in zip(txns, test) if keep]
    result = evaluate_transactions(test_txns, scores, bundle.threshold, k=100)
    figures = {
        "data": {"cards": cards, "days": days, "seed": args.seed, "train_rows": int(train.sum()), "test_rows": int(test.sum())},
        "alert_rate_per_1000": bundle.metadata["alert_rate"],
        "test": result,
    }
    path = write_results("quality", figures)
    print(f"ROC-AUC {result['roc_auc']:.4f}  AP {result['average_precision']:.4f}  "
          f"recall@budget {result['recall_at_alert_rate']:.3f}  precision@budget {result['precision_at_alert_rate']:.3f}")
    for name, m in result["per_scenario"].items():
        print(f"  {name:22s} ROC-AUC {m['roc_auc']:.4f}  AP {m['average_precision']:.4f}  recall {m['recall_at_alert_rate']:.3f}")
    print(f"→ {path}")


if __name__ == "__main__":
    main()
