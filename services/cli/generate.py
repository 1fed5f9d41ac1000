"""``fraudstream generate``: write a synthetic, labelled transaction file."""

from __future__ import annotations

from pathlib import Path

import typer

from fraudstream.services.cli.common import console, fail


def generate(
    out: Path = typer.Option(..., "--out", help="File to write: .csv, .csv.gz, .jsonl or .jsonl.gz."),
    cards: int = typer.Option(2_000, min=1, help="Number of cards (cardholders)."),
    days: int = typer.Option(30, min=1, help="Days of history."),
    seed: int = typer.Option(7, help="Random seed: the same seed writes the same file."),
    merchants: int | None = typer.Option(None, min=1, help="Number of merchants.", show_default="cards / 10, at least 50"),
    start: str = typer.Option("2026-01-01T00:00:00+00:00", help="Event time of the first day (RFC 3339)."),
) -> None:
    """Generate realistic card transactions with five labelled fraud scenarios (column `scenario`)."""
    from fraudstream.services.sources.generator import GeneratorConfig, estimate_rows, generate as rows
    from fraudstream.services.sources.generator import write_transactions

    if not any(str(out).endswith(s) for s in (".csv", ".csv.gz", ".jsonl", ".jsonl.gz")):
        raise fail(f"cannot tell the format of {out}: use .csv, .csv.gz, .jsonl or .jsonl.gz")
    config = GeneratorConfig(cards=cards, merchants=merchants, days=days, seed=seed, start=start)
    written = write_transactions(rows(config), out, total=estimate_rows(config), progress=True)
    console.print(f"wrote {written:,} transactions to {out}")
