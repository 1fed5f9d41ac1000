"""``fraudstream train``: replay history through the features and fit a detector (``evidence`` by default)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import typer
from rich.markup import escape

from fraudstream.services.cli.common import (
    FORMAT_HELP, MAX_AHEAD_HELP, NOT_BEFORE_HELP, console, dead_letter_path, event_window, fail, from_settings, read_history,
    settings, utc_now,
)

DETECTOR_HELP = (
    "evidence (per-feature tail evidence, weighed by the labels when the file has 20 frauds or more) "
    "or isolation_forest (the former default)."
)


def train(
    data: Path = typer.Option(..., "--data", help="Historical transactions (CSV or JSON Lines, plain or .gz)."),
    fmt: str = typer.Option("canonical", "--format", help=FORMAT_HELP),
    model_out: Path = typer.Option(..., "--model-out", help="Directory for the model bundle (replaced if present)."),
    alert_rate: float = typer.Option(10.0, "--alert-rate", help="Review budget: alerts per 1,000 transactions (sets the threshold)."),
    detector: str = typer.Option("evidence", "--detector", metavar="KIND", help=DETECTOR_HELP),
    trees: int | None = typer.Option(None, min=1, metavar="N", help="Trees in the forest (evidence: its no-label forest).",
                                     show_default="300 for evidence, 100 for isolation_forest"),
    max_samples: int | None = typer.Option(None, min=2, metavar="N", help="Rows per tree.",
                                           show_default="1024 for evidence, 256 for isolation_forest"),
    seed: int = typer.Option(0, help="Random seed for the forest."),
    dead_letters: Path | None = typer.Option(None, help="Where invalid rows go.", show_default="DATA.dead_letters.jsonl"),
    not_before: str | None = typer.Option(None, metavar="DATE", help=NOT_BEFORE_HELP, show_default=from_settings("pipeline.not_before")),
    max_ahead_hours: float | None = typer.Option(None, metavar="HOURS", help=MAX_AHEAD_HELP, show_default=from_settings("pipeline.max_ahead_hours")),
) -> None:
    """Train a model bundle. Labels (is_fraud), when every row has one, go to the detector: evidence weighs its features by them from 20 frauds on; they also measure the model (in-sample)."""
    from fraudstream.model.bundle import save_bundle
    from fraudstream.model.detectors.registry import UnknownDetector
    from fraudstream.model.train import feature_matrix, known_labels, make_detector, train_bundle

    if not 0 < alert_rate <= 1000:
        raise fail(f"--alert-rate must be in (0, 1000] alerts per 1,000 transactions, got {alert_rate}")
    try:
        chosen = make_detector(detector, n_estimators=trees, max_samples=max_samples, random_state=seed)
    except UnknownDetector as error:
        raise fail(f"--detector: {error}") from None
    config = settings(pipeline__not_before=not_before, pipeline__max_ahead_hours=max_ahead_hours)
    window = event_window(config.pipeline.not_before, config.pipeline.max_ahead_hours)
    rows = read_history(data, fmt, dead_letter_path(data, dead_letters), window=window)
    txns = [t for _, t in rows]
    with console.status(f"computing features for {len(txns):,} transactions"):
        X = feature_matrix(txns)
    known = known_labels(txns)
    with console.status(f"fitting the {detector} detector"):
        bundle = train_bundle(X, created_at=utc_now(), alert_rate=alert_rate, labels=known, detector=chosen)
    save_bundle(bundle, model_out)
    console.print(f"model {bundle.version} → {model_out} (threshold {bundle.threshold:.4f}, {alert_rate:g} alerts per 1,000)")
    console.print(describe_detector(bundle.metadata["detector"]), soft_wrap=True)
    console.print_json(json.dumps(bundle.metadata["metrics"]))


def describe_detector(detector: dict[str, Any]) -> str:
    """One line on what was trained: the kind, how it combined its evidence, and the features it left out."""
    text = str(detector.get("kind", "unknown"))
    if "combined_by" in detector:
        text += f": combined by {detector['combined_by']}"
    used, dropped = detector.get("used"), detector.get("dropped")
    if isinstance(used, dict) and isinstance(dropped, dict):
        text += f"; {len(used)} features used, {len(dropped)} left out (the bundle's metadata says why)"
    return escape(text)
