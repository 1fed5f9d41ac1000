"""Detection quality on many data sets at once, every detector beside the naive baselines on the same rows.

Each data set (see ``benchmarks/datasets``) is replayed through the feature step in event-time
order (history carried through), split by day: train on the first two thirds, test on the rest.
Every detector is fitted on the training rows, without labels except those named ``[labels]``
(confirmed frauds of the training weeks; ``[20% labels]``: only a fifth of them); its alert
threshold is the score that 10 of every 1,000 training rows reach. Reported on the test rows: ROC-AUC, average
precision, recall at that budget, card precision@100 per day, and per fraud scenario. Writes
benchmarks/results/quality.json and prints a table.

    .venv/bin/python benchmarks/bench_quality.py                   # every data set (4-17 min on 2 shared cores)
    .venv/bin/python benchmarks/bench_quality.py --quick           # a sixth of the size, a smoke run
    .venv/bin/python benchmarks/bench_quality.py --sets handbook,transfers --detectors default,naive_iforest,evidence
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from common import pin_one_core, write_results  # noqa: E402
from datasets import DataSet, builders  # noqa: E402

from fraudstream.model.evaluate import evaluate  # noqa: E402
from fraudstream.model.features.step import FEATURE_NAMES, INDEX  # noqa: E402
from fraudstream.model.policy import threshold_for_alert_rate  # noqa: E402
from fraudstream.model.train import DEFAULT_ALERT_RATE, feature_matrix, train_bundle  # noqa: E402

DAY_MS = 86_400_000
# Fit on X_train, return (train scores, test scores). Training labels are passed, and only the
# detectors named with [labels] read them (a fraud team's confirmed frauds); the rest never do.
Fitter = Callable[[np.ndarray, np.ndarray, DataSet, np.ndarray], tuple[np.ndarray, np.ndarray]]


def _naive_columns(X: np.ndarray, ds: DataSet) -> np.ndarray:
    cols = [np.expm1(X[:, INDEX["amount_log"]]), X[:, INDEX["hour_of_day"]], X[:, INDEX["day_of_week"]]]
    if ds.has_coordinates:
        cols.append(X[:, INDEX["distance_home_km"]])
    return np.column_stack(cols)


def naive_iforest(Xtr: np.ndarray, Xte: np.ndarray, ds: DataSet, ytr: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """What a new user writes in five lines: scikit-learn's IsolationForest on amount, hour, weekday (+ distance)."""
    from sklearn.ensemble import IsolationForest

    forest = IsolationForest(n_estimators=100, random_state=0, n_jobs=1).fit(_naive_columns(Xtr, ds))
    return -forest.score_samples(_naive_columns(Xtr, ds)), -forest.score_samples(_naive_columns(Xte, ds))


def amount_alone(Xtr: np.ndarray, Xte: np.ndarray, ds: DataSet, ytr: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    i = INDEX["amount_log"]
    return Xtr[:, i], Xte[:, i]


def default(Xtr: np.ndarray, Xte: np.ndarray, ds: DataSet, ytr: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Today's default: the 26 features through the project's Isolation Forest (model.train)."""
    bundle = train_bundle(Xtr, created_at="benchmark")
    return bundle.score_many(Xtr), bundle.score_many(Xte)


def forest_without_constants(Xtr: np.ndarray, Xte: np.ndarray, ds: DataSet, ytr: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The default forest, minus the features constant in the training window."""
    from fraudstream.model.detectors.isolation_forest import IsolationForestDetector

    keep = np.ptp(Xtr, axis=0) > 0
    det = IsolationForestDetector().fit(Xtr[:, keep])
    return det.score_many(Xtr[:, keep]), det.score_many(Xte[:, keep])


def _sklearn_style(make: Callable[[], Any], labels: bool = False) -> Fitter:
    def fit(Xtr: np.ndarray, Xte: np.ndarray, ds: DataSet, ytr: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        det = make().fit(Xtr, ytr if labels else None)
        return det.score_samples(Xtr), det.score_samples(Xte)
    return fit


# A feature the step lacks for account data (proposed, computed here from the balance extras):
# the share of the balance a transaction moves, and whether it leaves the account empty.
BALANCE_FEATURES = ("balance_drain", "balance_emptied")
BALANCE_EVIDENCE = {"balance_drain": ("amount", "up"), "balance_emptied": ("amount", "up")}


def balance_columns(ds: DataSet) -> np.ndarray | None:
    """(n, 2) balance_drain = min(1, amount / balance before), balance_emptied = balance after is 0; None without balances."""
    if "oldbalanceOrg" not in ds.txns[0].extra:
        return None
    old = np.array([float(t.extra.get("oldbalanceOrg") or 0.0) for t in ds.txns])
    new = np.array([float(t.extra.get("newbalanceOrig") or 0.0) for t in ds.txns])
    amount = np.array([t.amount for t in ds.txns])
    return np.column_stack([np.minimum(amount / np.maximum(old, 0.01), 1.0), (new <= 0.005).astype(np.float64)])


def with_balance(make: Callable[[tuple[str, ...]], Any], labels: bool = False) -> Fitter:
    """Fit on the 26 features plus the proposed balance features where the data set has balances."""
    def fit(Xtr: np.ndarray, Xte: np.ndarray, ds: DataSet, ytr: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        names = FEATURE_NAMES + (BALANCE_FEATURES if Xtr.shape[1] > len(FEATURE_NAMES) else ())
        det = make(names).fit(Xtr, ytr if labels else None)
        return det.score_samples(Xtr), det.score_samples(Xte)
    return fit


def _some_labels(fitter: Fitter, share: float = 0.2) -> Fitter:
    """Only a fifth of the training frauds confirmed (the rest look legitimate): labels arrive late and partly."""
    def fit(Xtr: np.ndarray, Xte: np.ndarray, ds: DataSet, ytr: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        kept = (ytr == 1) & (np.random.default_rng(0).random(ytr.size) < share)
        return fitter(Xtr, Xte, ds, kept.astype(np.int64))
    return fit


def _base(fitter: Fitter) -> Fitter:
    """Only the step's 26 features (drops the proposed extra columns)."""
    def fit(Xtr: np.ndarray, Xte: np.ndarray, ds: DataSet, ytr: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        n = len(FEATURE_NAMES)
        return fitter(Xtr[:, :n], Xte[:, :n], ds, ytr)
    return fit


def detectors() -> dict[str, Fitter]:
    """Baselines first, then the candidates; [labels] marks those that read the training labels."""
    from fraudstream.model.detectors.evidence import EvidenceDetector
    from fraudstream.model.detectors.group_forest import (
        EvidenceForestDetector,
        GroupForestDetector,
        OneSidedForestDetector,
    )
    from fraudstream.model.detectors.tails import TailEvidenceDetector

    plain = {
        "default": default,
        "naive_iforest": naive_iforest,
        "amount_alone": amount_alone,
        "forest_no_constants": forest_without_constants,
        "forest_one_sided": _sklearn_style(OneSidedForestDetector),
        "group_forests": _sklearn_style(GroupForestDetector),
        "tails_truncated": _sklearn_style(TailEvidenceDetector),
        "tails_fisher": _sklearn_style(lambda: TailEvidenceDetector(combine="fisher")),
        "ecod_one_sided": _sklearn_style(lambda: TailEvidenceDetector(combine="features")),
        "evidence_forest_256": _sklearn_style(EvidenceForestDetector),
        "evidence": _sklearn_style(EvidenceDetector),
        "tails_lift[labels]": _sklearn_style(lambda: TailEvidenceDetector(combine="weighted"), labels=True),
        "evidence[labels]": _sklearn_style(EvidenceDetector, labels=True),
        "evidence[20% labels]": _some_labels(_sklearn_style(EvidenceDetector, labels=True)),
    }
    out = {name: _base(f) for name, f in plain.items()}
    out["evidence+balance"] = with_balance(lambda names: EvidenceDetector(names, overrides=BALANCE_EVIDENCE))
    out["evidence+balance[labels]"] = with_balance(
        lambda names: EvidenceDetector(names, overrides=BALANCE_EVIDENCE), labels=True)
    return out


def run_set(ds: DataSet, fitters: dict[str, Fitter], k: int = 100) -> dict[str, Any]:
    started = time.perf_counter()
    X = feature_matrix(ds.txns)
    balance = balance_columns(ds)
    if balance is not None:
        X = np.column_stack([X, balance])
    feature_seconds = time.perf_counter() - started
    t = np.array([x.timestamp_ms for x in ds.txns])
    day = (t - t[0] // DAY_MS * DAY_MS) // DAY_MS
    days = int(day.max()) + 1
    train = day < (2 * days) // 3
    test = ~train
    labels = np.array([x.is_fraud for x in ds.txns], dtype=np.int64)
    cards = [x.card_id for x in ds.txns]
    scen = [str(x.extra.get("scenario") or "") for x in ds.txns]
    te_idx = np.flatnonzero(test)
    out: dict[str, Any] = {
        "about": ds.about,
        "rows": len(ds.txns), "days": days, "train_rows": int(train.sum()), "test_rows": int(test.sum()),
        "fraud_rate_test": float(labels[test].mean()),
        "feature_seconds": round(feature_seconds, 1),
        "detectors": {},
    }
    for name, fitter in fitters.items():
        t0 = time.perf_counter()
        s_train, s_test = fitter(X[train], X[test], ds, labels[train])
        seconds = time.perf_counter() - t0
        threshold = threshold_for_alert_rate(s_train, DEFAULT_ALERT_RATE)
        result = evaluate(s_test, labels[test], threshold, card_ids=[cards[i] for i in te_idx],
                          timestamps_ms=t[test], scenarios=[scen[i] for i in te_idx], k=k)
        result["seconds"] = round(seconds, 2)
        out["detectors"][name] = result
        print(f"  {ds.name:15s} {name:24s} AP {result['average_precision']:.3f}  ROC-AUC {result['roc_auc']:.3f}  "
              f"recall@budget {result['recall_at_alert_rate']:.3f}  ({seconds:.1f} s)", flush=True)
    return out


def print_table(results: dict[str, Any], names: list[str]) -> None:
    print("\nAP / ROC-AUC on the test weeks (x naive: AP over the naive IsolationForest's)")
    _ap_table(results, names)
    print("\nrecall at the budget (10 alerts per 1,000 training rows) / card precision@100 per day")
    header = f"{'data set':15s} " + " ".join(f"{n[:22]:>22s}" for n in names)
    print(header)
    for ds_name, r in results.items():
        cells = [f"{r['detectors'][n]['recall_at_alert_rate']:.3f}/{r['detectors'][n]['card_precision_at_100']:.3f}".rjust(22)
                 for n in names]
        print(f"{ds_name:15s} " + " ".join(cells))


def _ap_table(results: dict[str, Any], names: list[str]) -> None:
    header = f"{'data set':15s} " + " ".join(f"{n[:22]:>22s}" for n in names)
    print(header)
    for ds_name, r in results.items():
        naive = r["detectors"].get("naive_iforest", {}).get("average_precision")
        cells = []
        for n in names:
            m = r["detectors"][n]
            ratio = f" x{m['average_precision'] / naive:.1f}" if naive else ""
            cells.append(f"{m['average_precision']:.3f}/{m['roc_auc']:.3f}{ratio}".rjust(22))
        print(f"{ds_name:15s} " + " ".join(cells))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="each data set a sixth of its size, for a smoke run")
    parser.add_argument("--sets", default="", help="comma-separated data sets [default: all]")
    parser.add_argument("--detectors", default="", help="comma-separated detectors [default: all]")
    parser.add_argument("--name", default="quality", help="results file name (benchmarks/results/NAME.json)")
    args = parser.parse_args()
    pin_one_core()
    makers = builders(quick=args.quick)
    chosen = [s for s in args.sets.split(",") if s] or list(makers)
    fitters = detectors()
    if args.detectors:
        fitters = {n: fitters[n] for n in args.detectors.split(",")}
    started = time.perf_counter()
    results = {}
    for name in chosen:
        t0 = time.perf_counter()
        ds = makers[name]()
        print(f"{name}: {len(ds.txns):,} rows made in {time.perf_counter() - t0:.1f} s", flush=True)
        results[name] = run_set(ds, fitters)
        del ds
    print_table(results, list(fitters))
    figures = {"quick": args.quick, "alert_rate_per_1000": DEFAULT_ALERT_RATE,
               "feature_names": list(FEATURE_NAMES), "seconds": round(time.perf_counter() - started, 1),
               "data_sets": results}
    print(f"→ {write_results(args.name, figures)}  ({figures['seconds']:.0f} s)")


if __name__ == "__main__":
    main()
