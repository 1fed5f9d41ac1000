"""``fraudstream train``: replay history through the features and fit the Isolation Forest."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import typer

from fraudstream.services.cli.common import (
    FORMAT_HELP, MAX_AHEAD_HELP, NOT_BEFORE_HELP, console, dead_letter_path, event_window, fail, from_settings, read_history,
    settings, utc_now,
)


def train(
    data: Path = typer.Option(..., "--data", help="Historical transactions (CSV or JSON Lines, plain or .gz)."),
    fmt: str = typer.Option("canonical", "--format", help=FORMAT_HELP),
    model_out: Path = typer.Option(..., "--model-out", help="Directory for the model bundle (replaced if present)."),
    alert_rate: float = typer.Option(10.0, "--alert-rate", help="Review budget: alerts per 1,000 transactions (sets the threshold)."),
    trees: int = typer.Option(100, min=1, metavar="N", help="Trees in the forest."),
    max_samples: int = typer.Option(256, min=2, metavar="N", help="Rows per tree."),
    seed: int = typer.Option(0, help="Random seed for the forest."),
    dead_letters: Path | None = typer.Option(None, help="Where invalid rows go.", show_default="DATA.dead_letters.jsonl"),
    not_before: str | None = typer.Option(None, metavar="DATE", help=NOT_BEFORE_HELP, show_default=from_settings("pipeline.not_before")),
    max_ahead_hours: float | None = typer.Option(None, metavar="HOURS", help=MAX_AHEAD_HELP, show_default=from_settings("pipeline.max_ahead_hours")),
) -> None:
    """Train a model bundle; labels (is_fraud), when present, only measure it."""
    from fraudstream.model.bundle import save_bundle
    from fraudstream.model.train import feature_matrix, train_bundle

    if not 0 < alert_rate <= 1000:
        raise fail(f"--alert-rate must be in (0, 1000] alerts per 1,000 transactions, got {alert_rate}")
    config = settings(pipeline__not_before=not_before, pipeline__max_ahead_hours=max_ahead_hours)
    window = event_window(config.pipeline.not_before, config.pipeline.max_ahead_hours)
    rows = read_history(data, fmt, dead_letter_path(data, dead_letters), window=window)
    txns = [t for _, t in rows]
    with console.status(f"computing features for {len(txns):,} transactions"):
        X = feature_matrix(txns)
    labels = [t.is_fraud for t in txns]
    known = None if any(v is None for v in labels) else np.asarray(labels)
    with console.status("fitting the Isolation Forest"):
        bundle = train_bundle(
            X, created_at=utc_now(), alert_rate=alert_rate, labels=known,
            n_estimators=trees, max_samples=max_samples, random_state=seed,
        )
    save_bundle(bundle, model_out)
    console.print(f"model {bundle.version} → {model_out} (threshold {bundle.threshold:.4f}, {alert_rate:g} alerts per 1,000)")
    console.print_json(json.dumps(bundle.metadata["metrics"]))
