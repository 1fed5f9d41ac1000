"""Detection quality in the terms fraud teams use: ranking quality, card precision@k per day, recall at budget."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from fraudstream.model.errors import require
from fraudstream.model.policy import is_alert, threshold_for_alert_rate

if TYPE_CHECKING:
    from fraudstream.model.schema import Transaction

DAY_MS = 86_400_000


def ranking_metrics(scores: np.ndarray, labels: np.ndarray) -> dict[str, float | None]:
    """ROC-AUC and average precision; None where they are undefined (one class only)."""
    metrics = require("sklearn.metrics", "ranking metrics (ROC-AUC, average precision)")
    average_precision_score, roc_auc_score = metrics.average_precision_score, metrics.roc_auc_score

    labels = np.asarray(labels)
    if labels.size == 0 or labels.min() == labels.max():
        return {"roc_auc": None, "average_precision": None}
    return {
        "roc_auc": float(roc_auc_score(labels, scores)),
        "average_precision": float(average_precision_score(labels, scores)),
    }


def card_precision_at_k(
    scores: np.ndarray, labels: np.ndarray, card_ids: Sequence[str], timestamps_ms: np.ndarray, k: int
) -> float | None:
    """Mean over days of the share of frauded cards among the day's ``k`` highest-scoring cards.

    A card's daily score is its highest transaction score that day; it counts as frauded if any of
    its transactions that day is fraud. This is the review-queue view: analysts check cards, not rows.
    """
    if len(scores) == 0:
        return None
    days = np.asarray(timestamps_ms) // DAY_MS
    _, card_codes = np.unique(np.asarray(card_ids, dtype=object).astype(str), return_inverse=True)
    # Collapse to one row per (day, card): max score, max label.
    keys = days.astype(np.int64) * (int(card_codes.max()) + 1) + card_codes
    order = np.argsort(keys, kind="stable")
    keys_sorted = keys[order]
    starts = np.flatnonzero(np.r_[True, keys_sorted[1:] != keys_sorted[:-1]])
    card_score = np.maximum.reduceat(np.asarray(scores)[order], starts)
    card_label = np.maximum.reduceat(np.asarray(labels)[order], starts)
    card_day = days[order][starts]
    precisions = []
    for day in np.unique(card_day):
        mask = card_day == day
        top = np.argsort(-card_score[mask], kind="stable")[:k]
        precisions.append(card_label[mask][top].sum() / k)
    return float(np.mean(precisions))


def evaluate(
    scores: np.ndarray,
    labels: np.ndarray,
    threshold: float,
    *,
    card_ids: Sequence[str],
    timestamps_ms: np.ndarray,
    scenarios: Sequence[str] | None = None,
    k: int = 100,
) -> dict[str, Any]:
    """All headline metrics, overall and (when ``scenarios`` is given) per fraud scenario.

    Per scenario, ranking metrics compare that scenario's frauds against all legitimate rows.
    """
    scores = np.asarray(scores, dtype=np.float64)
    labels = np.asarray(labels, dtype=np.int64)
    alerts = is_alert(scores, threshold)
    n_fraud = int(labels.sum())
    result: dict[str, Any] = {
        "transactions": int(labels.size),
        "frauds": n_fraud,
        "alerts": int(alerts.sum()),
        "alerts_per_1000": float(alerts.mean() * 1000) if labels.size else 0.0,
        **ranking_metrics(scores, labels),
        f"card_precision_at_{k}": card_precision_at_k(scores, labels, card_ids, timestamps_ms, k),
        "recall_at_alert_rate": float(alerts[labels == 1].mean()) if n_fraud else None,
        "precision_at_alert_rate": float(labels[alerts].mean()) if alerts.any() else None,
    }
    if scenarios is not None:
        names = np.asarray(scenarios, dtype=object)
        legit = labels == 0
        per: dict[str, Any] = {}
        for name in sorted({s for s in names[labels == 1] if s}):
            mine = (names == name) & (labels == 1)
            subset = legit | mine
            per[name] = {
                "frauds": int(mine.sum()),
                **ranking_metrics(scores[subset], labels[subset]),
                "recall_at_alert_rate": float(alerts[mine].mean()),
            }
        result["per_scenario"] = per
    return result


def evaluate_transactions(txns: Sequence[Transaction], scores: np.ndarray, threshold: float, k: int = 100) -> dict[str, Any]:
    """:func:`evaluate` for labelled transactions; per-scenario figures when they carry a ``scenario`` extra."""
    has_scenarios = any("scenario" in t.extra for t in txns)
    return evaluate(
        scores,
        np.asarray([t.is_fraud for t in txns]),
        threshold,
        card_ids=[t.card_id for t in txns],
        timestamps_ms=np.asarray([t.timestamp_ms for t in txns]),
        scenarios=[str(t.extra.get("scenario") or "") for t in txns] if has_scenarios else None,
        k=k,
    )


def baseline_results(txns: Sequence[Transaction], X: np.ndarray, alert_rate: float, k: int = 100) -> dict[str, Any]:
    """The naive baselines (model/baselines.py) on the rows a model is evaluated on, with the same metrics.

    ``X`` are the rows' features as the model saw them. The naive IsolationForest is fitted on these
    very rows (evaluation has no other data): an unsupervised forest fitted in-sample, which flatters
    it if anything. Each baseline alerts on its top ``alert_rate`` per 1,000 of these rows (the
    model's budget), so recall at the budget compares like with like.
    """
    from fraudstream.model import baselines

    with_distance = baselines.has_coordinates(txns)
    n = len(txns)
    columns = ", ".join(baselines.naive_column_names(with_distance))
    budget = f"alerts on its top {alert_rate:g} per 1,000 of these rows (the model's budget)"
    candidates = {
        "naive_iforest": (
            baselines.naive_iforest(X, with_distance=with_distance)(X),
            f"scikit-learn IsolationForest ({baselines.NAIVE_TREES} trees, 256 rows per tree, seed {baselines.NAIVE_SEED}) "
            f"on {columns}, fitted on these {n:,} evaluated rows themselves (no training file, no labels); {budget}",
        ),
        "amount_alone": (baselines.amount_alone(X), f"the amount as the score, nothing fitted; {budget}"),
    }
    out: dict[str, Any] = {}
    for name, (scores, about) in candidates.items():
        threshold = threshold_for_alert_rate(scores, alert_rate)
        out[name] = {"about": about, "fitted_on": "the evaluated rows" if name == "naive_iforest" else None,
                     **evaluate_transactions(txns, scores, threshold, k)}
    return out
