"""``fraudstream evaluate``: detection quality of a model on labelled data, beside the naive baselines on the same rows."""

from __future__ import annotations

import json
from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from fraudstream.services.cli.common import (
    FORMAT_HELP, MAX_AHEAD_HELP, NOT_BEFORE_HELP, console, dead_letter_path, event_window, fail, from_settings, load_model,
    read_history, settings,
)

BASELINE_TITLES = {"naive_iforest": "naive IsolationForest", "amount_alone": "amount alone"}


def evaluate(
    data: Path = typer.Option(..., "--data", help="Labelled transactions (is_fraud) to evaluate on."),
    fmt: str = typer.Option("canonical", "--format", help=FORMAT_HELP),
    model: Path | None = typer.Option(None, "--model", help="Model bundle directory (from fraudstream train or make demo).", show_default=from_settings("paths.model")),
    as_json: bool = typer.Option(False, "--json", help="Print machine-readable JSON on stdout."),
    k: int = typer.Option(100, min=1, metavar="K", help="Cards reviewed per day for card precision@k."),
    dead_letters: Path | None = typer.Option(None, help="Where invalid rows go.", show_default="DATA.dead_letters.jsonl"),
    not_before: str | None = typer.Option(None, metavar="DATE", help=NOT_BEFORE_HELP, show_default=from_settings("pipeline.not_before")),
    max_ahead_hours: float | None = typer.Option(None, metavar="HOURS", help=MAX_AHEAD_HELP, show_default=from_settings("pipeline.max_ahead_hours")),
) -> None:
    """ROC-AUC, average precision, card precision@k per day and recall at the model's alert rate, beside two naive baselines on the same rows: an IsolationForest on amount, hour and weekday (+ distance) fitted on these rows themselves, and the amount alone."""
    from fraudstream.model.evaluate import baseline_results, evaluate_transactions
    from fraudstream.model.scoring import Scorer
    from fraudstream.model.train import DEFAULT_ALERT_RATE

    config = settings(paths__model=model, pipeline__not_before=not_before, pipeline__max_ahead_hours=max_ahead_hours)
    bundle = load_model(config.paths.model)
    window = event_window(config.pipeline.not_before, config.pipeline.max_ahead_hours)
    rows = read_history(data, fmt, dead_letter_path(data, dead_letters), event_order=False, window=window)
    txns = [t for _, t in rows]
    unlabelled = sum(t.is_fraud is None for t in txns)
    if unlabelled:
        raise fail(f"{unlabelled:,} of {len(txns):,} rows have no is_fraud label; evaluate needs labelled data")
    with console.status(f"scoring {len(txns):,} transactions"):
        X = Scorer(bundle).features(txns)  # file order, history carried: what decide_batch scores
        scores = bundle.score_many(X)
    result = evaluate_transactions(txns, scores, bundle.threshold, k=k)
    result["model_version"] = bundle.version
    with console.status("fitting the naive baseline on the same rows"):
        alert_rate = float(bundle.metadata.get("alert_rate") or DEFAULT_ALERT_RATE)
        result["baselines"] = baseline_results(txns, X, alert_rate, k=k)
    if as_json:
        print(json.dumps(result, indent=2))
        return
    out = Console()
    table = Table(title=f"{data.name} — model {bundle.version} beside the naive baselines, same {len(txns):,} rows")
    table.add_column("metric")
    table.add_column("model", justify="right")
    for name in result["baselines"]:
        table.add_column(BASELINE_TITLES.get(name, name), justify="right")
    for key, value in result.items():
        if key in ("per_scenario", "baselines"):
            continue
        table.add_row(key, _fmt(value), *(_fmt(b.get(key, "")) for b in result["baselines"].values()))
    out.print(table)
    for name, b in result["baselines"].items():
        out.print(f"{BASELINE_TITLES.get(name, name)}: {b['about']}", soft_wrap=True, markup=False)
    naive = result["baselines"].get("naive_iforest", {}).get("average_precision")
    if naive and result.get("average_precision") is not None:
        verdict = result["average_precision"] / naive
        out.print(f"model average precision = {verdict:.1f}× the naive IsolationForest's on these rows"
                  + ("" if verdict >= 1 else " — the model does not beat it here"), markup=False)
    if result.get("per_scenario"):
        per = Table(title="per fraud scenario")
        for column in ("scenario", "frauds", "roc_auc", "average_precision", "recall_at_alert_rate"):
            per.add_column(column, justify="left" if column == "scenario" else "right")
        for name, m in result["per_scenario"].items():
            per.add_row(name, *(_fmt(m[c]) for c in ("frauds", "roc_auc", "average_precision", "recall_at_alert_rate")))
        Console().print(per)


def _fmt(value: object) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, float):
        return f"{value:.4f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)
