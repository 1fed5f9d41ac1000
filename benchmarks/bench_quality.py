"""Detection quality on many data sets at once, every detector beside the naive baselines on the same rows.

Each data set (see ``benchmarks/datasets``) is replayed through the feature step in event-time
order (history carried through), split by day: train on the first two thirds, test on the rest.
Every detector is fitted on the training rows, without labels except those named ``[labels]``
(confirmed frauds of the training weeks; ``[20% labels]``: only a fifth of them); its alert
threshold is the score that 10 of every 1,000 training rows reach. ``default`` and ``default[labels]``
take the product's own path (``train_bundle``'s default detector, without or with the training
labels, saved as a bundle, loaded back and scored as serving scores), so they must equal the
``evidence`` candidates they are; ``former_default`` is the Isolation Forest on the 26 features,
the default before issue 10. Reported on the test rows: ROC-AUC, average
precision, recall at that budget, card precision@100 per day, and per fraud scenario. Writes
benchmarks/results/quality.json and prints a table.

    .venv/bin/python benchmarks/bench_quality.py                   # every data set (4-17 min on 2 shared cores)
    .venv/bin/python benchmarks/bench_quality.py --quick           # a sixth of the size, a smoke run
    .venv/bin/python benchmarks/bench_quality.py --sets handbook,transfers --detectors default,naive_iforest,evidence
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from common import pin_one_core, write_results  # noqa: E402
from datasets import DataSet, builders  # noqa: E402

from fraudstream.model import baselines  # noqa: E402
from fraudstream.model.evaluate import evaluate  # noqa: E402
from fraudstream.model.bundle import load_bundle, save_bundle  # noqa: E402
from fraudstream.model.features.step import FEATURE_NAMES, FEATURES_VERSION  # noqa: E402
from fraudstream.model.policy import threshold_for_alert_rate  # noqa: E402
from fraudstream.model.train import DEFAULT_ALERT_RATE, feature_matrix, train_bundle  # noqa: E402

DAY_MS = 86_400_000
# Fit on X_train, return (train scores, test scores). Training labels are passed, and only the
# detectors named with [labels] read them (a fraud team's confirmed frauds); the rest never do.
Fitter = Callable[[np.ndarray, np.ndarray, "Replayed", np.ndarray], tuple[np.ndarray, np.ndarray]]


def naive_iforest(Xtr: np.ndarray, Xte: np.ndarray, ds: Replayed, ytr: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """What a new user writes in five lines (model/baselines.py, the one `fraudstream evaluate` prints too)."""
    score = baselines.naive_iforest(Xtr, with_distance=ds.has_coordinates)
    return score(Xtr), score(Xte)


def amount_alone(Xtr: np.ndarray, Xte: np.ndarray, ds: Replayed, ytr: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    return baselines.amount_alone(Xtr), baselines.amount_alone(Xte)


def former_default(Xtr: np.ndarray, Xte: np.ndarray, ds: Replayed, ytr: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The default before issue 10: the 26 features through the project's Isolation Forest."""
    from fraudstream.model.detectors.isolation_forest import IsolationForestDetector

    bundle = train_bundle(Xtr, created_at="benchmark", detector=IsolationForestDetector())
    return bundle.score_many(Xtr), bundle.score_many(Xte)


def product_default(labels: bool) -> Fitter:
    """The product's path, as `fraudstream train` takes it: train_bundle's default detector (with the
    training labels when ``labels``), saved as a bundle, loaded back, scored as serving scores."""
    def fit(Xtr: np.ndarray, Xte: np.ndarray, ds: Replayed, ytr: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        with tempfile.TemporaryDirectory() as tmp:
            trained = train_bundle(Xtr, created_at="benchmark", labels=ytr if labels else None)
            bundle = load_bundle(save_bundle(trained, Path(tmp) / "model"))
        return bundle.score_many(Xtr), bundle.score_many(Xte)
    return fit


def forest_without_constants(Xtr: np.ndarray, Xte: np.ndarray, ds: Replayed, ytr: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The default forest, minus the features constant in the training window."""
    from fraudstream.model.detectors.isolation_forest import IsolationForestDetector

    keep = np.ptp(Xtr, axis=0) > 0
    det = IsolationForestDetector().fit(Xtr[:, keep])
    return det.score_many(Xtr[:, keep]), det.score_many(Xte[:, keep])


def _sklearn_style(make: Callable[[], Any], labels: bool = False) -> Fitter:
    def fit(Xtr: np.ndarray, Xte: np.ndarray, ds: Replayed, ytr: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
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
    def fit(Xtr: np.ndarray, Xte: np.ndarray, ds: Replayed, ytr: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        names = FEATURE_NAMES + (BALANCE_FEATURES if Xtr.shape[1] > len(FEATURE_NAMES) else ())
        det = make(names).fit(Xtr, ytr if labels else None)
        return det.score_samples(Xtr), det.score_samples(Xte)
    return fit


def _some_labels(fitter: Fitter, share: float = 0.2) -> Fitter:
    """Only a fifth of the training frauds confirmed (the rest look legitimate): labels arrive late and partly."""
    def fit(Xtr: np.ndarray, Xte: np.ndarray, ds: Replayed, ytr: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        kept = (ytr == 1) & (np.random.default_rng(0).random(ytr.size) < share)
        return fitter(Xtr, Xte, ds, kept.astype(np.int64))
    return fit


def _base(fitter: Fitter) -> Fitter:
    """Only the step's 26 features (drops the proposed extra columns)."""
    def fit(Xtr: np.ndarray, Xte: np.ndarray, ds: Replayed, ytr: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        n = len(FEATURE_NAMES)
        return fitter(Xtr[:, :n], Xte[:, :n], ds, ytr)
    return fit


def detectors() -> dict[str, Fitter]:
    """Baselines first, then the candidates; [labels] marks those that read the training labels."""
    from fraudstream.model.detectors.evidence import EvidenceDetector
    from fraudstream.model.detectors.group_forest import (
        EvidenceForestDetector,
        EvidenceGroupForestsDetector,
        GroupForestDetector,
        TruncatedEvidenceForestDetector,
        OneSidedForestDetector,
    )
    from fraudstream.model.detectors.tails import TailEvidenceDetector

    plain = {
        "default": product_default(labels=False),
        "default[labels]": product_default(labels=True),
        "former_default": former_default,
        "naive_iforest": naive_iforest,
        "amount_alone": amount_alone,
        "forest_no_constants": forest_without_constants,
        "forest_one_sided": _sklearn_style(OneSidedForestDetector),
        "group_forests": _sklearn_style(GroupForestDetector),
        "tails_truncated": _sklearn_style(TailEvidenceDetector),
        "tails_fisher": _sklearn_style(lambda: TailEvidenceDetector(combine="fisher")),
        "ecod_one_sided": _sklearn_style(lambda: TailEvidenceDetector(combine="features")),
        "evidence_forest_256": _sklearn_style(EvidenceForestDetector),
        "evidence_by_group": _sklearn_style(lambda: EvidenceForestDetector(n_estimators=300, max_samples=1024,
                                                                            by_group=True)),
        "evidence_truncated": _sklearn_style(lambda: TruncatedEvidenceForestDetector(n_estimators=300, max_samples=1024)),
        "group_evidence_forests": _sklearn_style(EvidenceGroupForestsDetector),
        "group_evidence_forests_max": _sklearn_style(lambda: EvidenceGroupForestsDetector(combine="max")),
        "evidence+groups": _sklearn_style(lambda: EvidenceGroupForestsDetector(with_all=True)),
        "evidence+basics": _sklearn_style(lambda: EvidenceGroupForestsDetector(groups=False, with_all=True,
                                                                              with_basics=True)),
        "evidence": _sklearn_style(EvidenceDetector),
        "evidence[cold]": _sklearn_style(lambda: EvidenceDetector(warm_history=0)),  # before: tables from every row
        "tails_lift[labels]": _sklearn_style(lambda: TailEvidenceDetector(combine="weighted"), labels=True),
        "evidence[labels]": _sklearn_style(EvidenceDetector, labels=True),
        "evidence[20% labels]": _some_labels(_sklearn_style(EvidenceDetector, labels=True)),
    }
    out = {name: _base(f) for name, f in plain.items()}
    out["evidence+balance"] = with_balance(lambda names: EvidenceDetector(names, overrides=BALANCE_EVIDENCE))
    out["evidence+balance[labels]"] = with_balance(
        lambda names: EvidenceDetector(names, overrides=BALANCE_EVIDENCE), labels=True)
    return out


@dataclass(frozen=True)
class Replayed:
    """A data set after the feature step: what every detector sees (cacheable, so options compare fast)."""

    name: str
    about: str
    has_coordinates: bool
    X: np.ndarray  # the step's features (+ the balance columns where the data has balances)
    t: np.ndarray  # event time, ms
    labels: np.ndarray
    cards: np.ndarray
    scenarios: np.ndarray
    feature_seconds: float


def replay(ds: DataSet) -> Replayed:
    """Run the feature step over ``ds`` in event-time order (history carried through)."""
    started = time.perf_counter()
    X = feature_matrix(ds.txns)
    balance = balance_columns(ds)
    if balance is not None:
        X = np.column_stack([X, balance])
    return Replayed(ds.name, ds.about, ds.has_coordinates, X, np.array([x.timestamp_ms for x in ds.txns]),
                    np.array([x.is_fraud for x in ds.txns], dtype=np.int64), np.array([x.card_id for x in ds.txns]),
                    np.array([str(x.extra.get("scenario") or "") for x in ds.txns]),
                    round(time.perf_counter() - started, 1))


def cached_replay(name: str, make: Callable[[], DataSet], cache: Path | None, quick: bool) -> Replayed:
    """:func:`replay`, kept in ``cache`` (npz, keyed on the feature definition) when a cache is given."""
    path = None if cache is None else cache / f"{name}{'-quick' if quick else ''}-{FEATURES_VERSION}.npz"
    if path is not None and path.exists():
        with np.load(path, allow_pickle=False) as z:
            return Replayed(name, str(z["about"]), bool(z["has_coordinates"]), z["X"], z["t"], z["labels"],
                            z["cards"], z["scenarios"], float(z["feature_seconds"]))
    t0 = time.perf_counter()
    ds = make()
    print(f"{name}: {len(ds.txns):,} rows made in {time.perf_counter() - t0:.1f} s", flush=True)
    r = replay(ds)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        np.savez(path, about=r.about, has_coordinates=r.has_coordinates, X=r.X, t=r.t, labels=r.labels,
                 cards=r.cards, scenarios=r.scenarios, feature_seconds=r.feature_seconds)
    return r


def run_set(ds: Replayed, fitters: dict[str, Fitter], k: int = 100) -> dict[str, Any]:
    X = ds.X
    feature_seconds = ds.feature_seconds
    t = ds.t
    day = (t - t[0] // DAY_MS * DAY_MS) // DAY_MS
    days = int(day.max()) + 1
    train = day < (2 * days) // 3
    test = ~train
    labels = ds.labels
    cards = ds.cards.tolist()
    scen = ds.scenarios.tolist()
    te_idx = np.flatnonzero(test)
    out: dict[str, Any] = {
        "about": ds.about,
        "rows": len(t), "days": days, "train_rows": int(train.sum()), "test_rows": int(test.sum()),
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
    parser.add_argument("--cache", type=Path, default=None,
                        help="keep each data set's feature matrix here (e.g. var/quality-cache) and reuse it; "
                             "keyed on the feature definition only: empty it after changing benchmarks/datasets")
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
        ds = cached_replay(name, makers[name], args.cache, args.quick)
        results[name] = run_set(ds, fitters)
        del ds
    print_table(results, list(fitters))
    figures = {"quick": args.quick, "alert_rate_per_1000": DEFAULT_ALERT_RATE,
               "feature_names": list(FEATURE_NAMES), "seconds": round(time.perf_counter() - started, 1),
               "data_sets": results}
    print(f"→ {write_results(args.name, figures)}  ({figures['seconds']:.0f} s)")


if __name__ == "__main__":
    main()
