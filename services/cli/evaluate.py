"""``fraudstream evaluate``: detection quality of a model on labelled data."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import typer
from rich.console import Console
from rich.table import Table

from fraudstream.services.cli.common import (
    FORMAT_HELP, MAX_AHEAD_HELP, NOT_BEFORE_HELP, console, dead_letter_path, event_window, fail, from_settings, load_model,
    read_history, settings,
)


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
    """ROC-AUC, average precision, card precision@k per day and recall at the model's alert rate."""
    from fraudstream.model.evaluate import evaluate_transactions
    from fraudstream.model.scoring import Scorer

    config = settings(paths__model=model, pipeline__not_before=not_before, pipeline__max_ahead_hours=max_ahead_hours)
    bundle = load_model(config.paths.model)
    window = event_window(config.pipeline.not_before, config.pipeline.max_ahead_hours)
    rows = read_history(data, fmt, dead_letter_path(data, dead_letters), event_order=False, window=window)
    txns = [t for _, t in rows]
    unlabelled = sum(t.is_fraud is None for t in txns)
    if unlabelled:
        raise fail(f"{unlabelled:,} of {len(txns):,} rows have no is_fraud label; evaluate needs labelled data")
    with console.status(f"scoring {len(txns):,} transactions"):
        scores = np.asarray([d.score for d in Scorer(bundle).decide_batch(txns)])
    result = evaluate_transactions(txns, scores, bundle.threshold, k=k)
    result["model_version"] = bundle.version
    if as_json:
        print(json.dumps(result, indent=2))
        return
    table = Table(title=f"{data.name} — model {bundle.version}")
    table.add_column("metric")
    table.add_column("value", justify="right")
    for key, value in result.items():
        if key != "per_scenario":
            table.add_row(key, _fmt(value))
    Console().print(table)
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
