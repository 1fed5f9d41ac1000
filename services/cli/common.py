"""What the CLI commands share: the console, friendly loading of models and data files, exit codes."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

from fraudstream.model.replay import in_event_order
from fraudstream.model.schema import Transaction
from fraudstream.services.sources.files import check_file, read_transactions
from fraudstream.services.sources.mapping import resolve_format
from fraudstream.services.stores.dead_letters import JsonlDeadLetterSink

console = Console(stderr=True)

FORMAT_HELP = "Input layout: canonical, sparkov, handbook, or a column-mapping .toml file."


def fail(message: str, code: int = 2) -> typer.Exit:
    """Print a one-line error (no traceback) and return the Exit to raise."""
    console.print(f"[bold red]error:[/] {escape(message)}", soft_wrap=True)
    return typer.Exit(code)


def utc_now() -> str:
    """The wall clock, read at the edge (the core never reads one)."""
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def load_model(directory: Path):  # -> ModelBundle
    """Load a model bundle or exit with a hint on how to make one."""
    from fraudstream.model.bundle import BundleError, load_bundle

    try:
        return load_bundle(directory)
    except BundleError as error:
        raise fail(f"{error}\nTrain one with: fraudstream train --data FILE --model-out {directory}", error.exit_code) from None


def progress() -> Progress:
    """A progress display for long work (rows, with a spinner when the total is unknown)."""
    return Progress(
        SpinnerColumn(), TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
        TextColumn("{task.fields[rate]}"), TimeElapsedColumn(), console=console, transient=False,
    )


def dead_letter_path(data: Path, explicit: Path | None) -> Path:
    """Where bad rows of ``data`` go unless told: next to it, ``<name>.dead_letters.jsonl``."""
    return explicit if explicit is not None else data.with_name(data.name + ".dead_letters.jsonl")


def read_history(data: Path, fmt: str, dead_letters: Path) -> list[tuple[int, Transaction]]:
    """All valid rows of ``data`` in event-time order; bad rows go to ``dead_letters`` (summarised)."""
    try:
        check_file(data)
        resolve_format(fmt)
    except (OSError, ValueError) as error:  # missing file, unknown type, bad mapping
        raise fail(str(error)) from None
    rows: list[tuple[int, Transaction]] = []
    dead_letters.unlink(missing_ok=True)  # this run's bad rows only
    with JsonlDeadLetterSink(dead_letters) as sink, progress() as bar:
        task = bar.add_task(f"reading {data.name}", total=None, rate="")
        for i, row in enumerate(_read(data, fmt, sink), start=1):
            rows.append(row)
            if i % 50_000 == 0:
                elapsed = bar.tasks[0].elapsed or 1e-9
                bar.update(task, completed=i, rate=f"{i / elapsed:,.0f} rows/s")
        bar.update(task, completed=len(rows), total=len(rows))
        bad = sink.count
    if bad:
        console.print(f"[yellow]{bad:,} invalid rows[/] went to {dead_letters} (each with its row number and reason)")
    if not rows:
        raise fail(f"no valid transactions in {data}")
    return in_event_order(rows)


def _read(data: Path, fmt: str, sink: JsonlDeadLetterSink) -> Iterator[tuple[int, Transaction]]:
    try:
        yield from read_transactions(data, fmt, sink)
    except (ValueError, OSError) as error:  # MappingError, FileFormatError, decoding
        raise fail(str(error)) from None
