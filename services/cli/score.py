"""``fraudstream score``: replay a file in its order (as a stream would deliver it) and write a verdict for every admitted row."""

from __future__ import annotations

import csv
from pathlib import Path

import typer

from fraudstream.services.cli.common import (
    FORMAT_HELP, MAX_AHEAD_HELP, NOT_BEFORE_HELP, console, dead_letter_path, event_window, from_settings, load_model,
    read_history, settings,
)

CHUNK = 50_000


def score(
    data: Path = typer.Option(..., "--data", help="Transactions to score (CSV or JSON Lines, plain or .gz)."),
    fmt: str = typer.Option("canonical", "--format", help=FORMAT_HELP),
    model: Path | None = typer.Option(None, "--model", help="Model bundle directory (from fraudstream train or make demo).", show_default=from_settings("paths.model")),
    out: Path = typer.Option(..., "--out", help="CSV to write, with columns transaction_id, score, alert, reasons."),
    dead_letters: Path | None = typer.Option(None, help="Where invalid rows go.", show_default="DATA.dead_letters.jsonl"),
    not_before: str | None = typer.Option(None, metavar="DATE", help=NOT_BEFORE_HELP, show_default=from_settings("pipeline.not_before")),
    max_ahead_hours: float | None = typer.Option(None, metavar="HOURS", help=MAX_AHEAD_HELP, show_default=from_settings("pipeline.max_ahead_hours")),
) -> None:
    """Score every valid row, carrying each card's history through the file; is_fraud is never read."""
    from fraudstream.model.scoring import Scorer

    config = settings(paths__model=model, pipeline__not_before=not_before, pipeline__max_ahead_hours=max_ahead_hours)
    bundle = load_model(config.paths.model)
    window = event_window(config.pipeline.not_before, config.pipeline.max_ahead_hours)
    rows = read_history(data, fmt, dead_letter_path(data, dead_letters), event_order=False, window=window)
    scorer = Scorer(bundle)
    alerts = 0
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    with open(tmp, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["transaction_id", "score", "alert", "reasons"])
        with console.status("scoring") as status:
            for start in range(0, len(rows), CHUNK):
                chunk = [t for _, t in rows[start : start + CHUNK]]
                decisions = scorer.decide_batch(chunk)
                writer.writerows(
                    (d.transaction_id, repr(d.score), int(d.alert), "; ".join(d.reasons)) for d in decisions
                )
                alerts += sum(d.alert for d in decisions)
                status.update(f"scoring: {start + len(chunk):,} / {len(rows):,}")
    tmp.replace(out)
    console.print(f"scored {len(rows):,} transactions, {alerts:,} alerts → {out}")

