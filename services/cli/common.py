"""What the CLI commands share: the console, friendly loading of models and data files, exit codes."""

from __future__ import annotations

from collections.abc import Iterator
from contextvars import ContextVar
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

from fraudstream.model.replay import in_event_order
from fraudstream.model.schema import InvalidTransaction, Transaction, parse_timestamp
from fraudstream.services.pipeline import card_key
from fraudstream.services.pipeline.cards import CardIds
from fraudstream.services.pipeline.core import EventTimeWindow, Intake
from fraudstream.services.settings import Settings, SettingsError, load_settings
from fraudstream.services.sources.files import check_file, read_transactions
from fraudstream.services.sources.mapping import resolve_format
from fraudstream.services.stores.dead_letters import JsonlDeadLetterSink

console = Console(stderr=True)
# The global --config FILE of the invocation running now; set by the root callback, reset when it ends.
CONFIG_FILE: ContextVar[Path | None] = ContextVar("fraudstream_config_file", default=None)

FORMAT_HELP = "Input layout: canonical, sparkov, handbook, or a column-mapping .toml file."
STORE_HELP = (
    "Alert store: a SQLite path or sqlite://PATH, elasticsearch://HOST:PORT, opensearch://HOST:PORT "
    "(credentials from the environment, see the README) or memory://."
)
# Help strings are Rich markup: a literal "[default: x]" would vanish (read as a style tag), so
# computed defaults go in typer.Option(show_default="...") and brackets in help texts are escaped.
NOT_BEFORE_HELP = "Earliest plausible event time (YYYY-MM-DD or RFC 3339); earlier rows are dead letters."
MAX_AHEAD_HELP = "Rows more than this many hours ahead of the newest event and the clock are dead letters."


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


def settings(**flags: Any) -> Settings:
    """The effective settings for this command: defaults < ``--config``/``$FRAUDSTREAM_CONFIG`` < environment
    < ``flags`` (``section__field=value``; ``None`` = the flag was not given). Errors exit with code 2."""
    overrides = {key.replace("__", "."): value for key, value in flags.items()}
    try:
        return load_settings(config_file(), overrides=overrides)
    except SettingsError as error:
        raise fail(str(error), error.exit_code) from None


def card_ids() -> CardIds:
    """Card numbers -> keyed ids with the configured key (``[card_ids] key``, ``FRAUDSTREAM_CARD_ID_KEY``; else
    ``var/card_id.key``), read only when the first card number is seen."""
    def secret() -> str | None:
        key = settings().card_ids.key
        return key.get_secret_value() if key is not None else None

    return card_key.card_ids(secret)


def config_file() -> Path | None:
    """The global ``--config FILE`` of this invocation (kept by the root callback), or None."""
    return CONFIG_FILE.get()


def from_settings(key: str) -> str:
    """What a flag that defaults to setting ``key`` shows as its default in ``--help``: the built-in value and the
    setting's name (``fraudstream config`` shows the effective value and its variable)."""
    return f"{Settings().get(key)}, setting {key}"


def event_window(not_before: str, max_ahead_hours: float) -> EventTimeWindow:
    """The event-time window from the settings (``--not-before``, ``--max-ahead-hours``, ``[pipeline]``)."""
    try:
        earliest, _ = parse_timestamp(not_before if "T" in not_before else f"{not_before}T00:00:00Z")
    except InvalidTransaction as error:
        raise fail(f"--not-before must be a date (YYYY-MM-DD) or an RFC 3339 time: {error.reason}") from None
    if not 0 <= max_ahead_hours < 1e6:
        raise fail(f"--max-ahead-hours must be 0 or more, got {max_ahead_hours}")
    return EventTimeWindow(earliest, round(max_ahead_hours * 3_600_000))


def read_history(
    data: Path, fmt: str, dead_letters: Path, *, event_order: bool = True, window: EventTimeWindow | None = None
) -> list[tuple[int, Transaction]]:
    """All admitted rows of ``data`` (the pipeline core's rules: contract, event-time window, duplicate ids,
    applied in file order), in event-time order (training) or in file order (scoring: the order a stream
    would deliver them); bad rows go to ``dead_letters`` (summarised)."""
    try:
        check_file(data)
        resolve_format(fmt)
    except (OSError, ValueError) as error:  # missing file, unknown type, bad mapping
        raise fail(str(error)) from None
    rows: list[tuple[int, Transaction]] = []
    dead_letters.unlink(missing_ok=True)  # this run's bad rows only
    intake = Intake(str(data), window=window, card_ids=card_ids())
    with JsonlDeadLetterSink(dead_letters) as sink, progress() as bar:
        task = bar.add_task(f"reading {data.name}", total=None, rate="")
        for i, row in enumerate(_read(data, fmt, sink, intake), start=1):
            rows.append(row)
            if i % 50_000 == 0:
                elapsed = bar.tasks[0].elapsed or 1e-9
                bar.update(task, completed=i, rate=f"{i / elapsed:,.0f} rows/s")
        bar.update(task, completed=len(rows), total=len(rows))
        bad = sink.count
    if bad:
        console.print(f"[yellow]{bad:,} invalid rows[/] went to {dead_letters} (each with its row number and reason)")
    if intake.duplicates:
        console.print(f"{intake.duplicates:,} duplicates (retries of a transaction already read) skipped")
    if not rows:
        raise fail(f"no valid transactions in {data}")
    return in_event_order(rows) if event_order else rows


def _read(data: Path, fmt: str, sink: JsonlDeadLetterSink, intake: Intake) -> Iterator[tuple[int, Transaction]]:
    try:
        yield from read_transactions(data, fmt, sink, intake)
    except (ValueError, OSError) as error:  # MappingError, FileFormatError, decoding
        raise fail(str(error)) from None
