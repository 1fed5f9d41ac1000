"""``fraudstream demo``: the whole embedded pipeline in one command, with nothing to set up."""

from __future__ import annotations

import signal
import subprocess
import threading
from datetime import datetime, timedelta
from pathlib import Path

import typer

from fraudstream.services import defaults
from fraudstream.services.cli.dashboard import start as start_dashboard
from fraudstream.services.cli.dashboard import stop as stop_dashboard
from fraudstream.services.cli.dashboard import url, wait_healthy
from fraudstream.services.cli.common import console, dead_letter_path, load_model, read_history, utc_now

DISPLAY = "Live view & dashboard"


def demo(
    directory: Path = typer.Option(defaults.DEMO_DIR, "--dir", help="Where the demo keeps its data, model and alert store."),
    cards: int = typer.Option(2_000, min=10, metavar="N", help="Cards in the simulated portfolio."),
    history_days: int = typer.Option(21, min=2, metavar="N", help="Days of history to train on."),
    live_days: int = typer.Option(9, min=1, metavar="N", help="Days of live transactions after the history."),
    rate: float = typer.Option(200.0, min=0.1, metavar="RATE", help="Live transactions per second."),
    seed: int = typer.Option(7, help="Generator seed."),
    live_view: bool = typer.Option(True, "--live-view/--no-live-view", help="Show the live terminal view.", rich_help_panel=DISPLAY),
    dashboard: bool = typer.Option(True, "--dashboard/--no-dashboard", help="Serve the web dashboard beside the pipeline.", rich_help_panel=DISPLAY),
    port: int = typer.Option(8501, "--port", help="Dashboard port.", rich_help_panel=DISPLAY),
    address: str = typer.Option("127.0.0.1", "--address", help="Dashboard address (0.0.0.0 exposes it to the network).", rich_help_panel=DISPLAY),
) -> None:
    """Generate history, train a model if there is none, then score a live stream with a live view and the dashboard.

    The live stream continues the same cards: the feature state is first warmed up from their history (`run --warm-up`: no scores, no alerts, so the demo does not open with an alert storm), then new transactions arrive at --rate per second.

    Ctrl-C stops cleanly; running the demo again resumes where it stopped. Afterwards `fraudstream run` uses the demo's model.
    """
    from fraudstream.model.bundle import BUNDLE_FORMAT, save_bundle, stored_format
    from fraudstream.model.train import feature_matrix, known_labels, train_bundle
    from fraudstream.services.cli.run import run_pipeline
    from fraudstream.services.cli.warm_up import warm_from_file
    from fraudstream.services.runners.checkpoint import CheckpointFile, CheckpointMismatch
    from fraudstream.services.sources.generator import GeneratorConfig, estimate_rows, generate, write_transactions
    from fraudstream.services.sources.generator_source import GeneratorSource
    from fraudstream.services.stores.alerts.sqlite import SqliteAlertStore

    start = "2026-01-01T00:00:00+00:00"
    paths = defaults.demo_paths(directory)
    history, model_dir = paths.history, paths.model
    if not history.exists():
        config = GeneratorConfig(cards=cards, days=history_days, seed=seed, start=start)
        console.print(f"[bold]1/3[/] generating {history_days} days of history for {cards:,} cards → {history}")
        write_transactions(generate(config), history, total=estimate_rows(config), progress=True)
    found = stored_format(model_dir)
    outdated = found is not None and found < BUNDLE_FORMAT  # the demo's own model, from an older fraudstream
    if outdated or not (model_dir / "bundle.json").exists():
        console.print(f"[bold]2/3[/] training a model on {history} → {model_dir}")
        txns = [t for _, t in read_history(history, "canonical", dead_letter_path(history, None))]
        # as `fraudstream train` does: the generator's labels weigh the default detector's evidence
        bundle = train_bundle(feature_matrix(txns), created_at=utc_now(), labels=known_labels(txns))
        save_bundle(bundle, model_dir)
    bundle = load_model(model_dir)  # a damaged or edited bundle is refused with a clear message, never replaced
    alerts_db, where = paths.store, url(address, port)
    store = SqliteAlertStore(alerts_db)  # created before the dashboard opens it
    server = start_dashboard(str(alerts_db), model_dir, address, port, log=paths.dashboard_log) if dashboard else None
    try:
        if server is not None:
            if wait_healthy(server, where):
                console.print(f"dashboard on [bold]{where}[/]")
            else:
                console.print(f"[yellow]the dashboard did not start; see {paths.dashboard_log}[/]")
        live_from = (datetime.fromisoformat(start) + timedelta(days=history_days)).isoformat(timespec="milliseconds")
        checkpoint = CheckpointFile(paths.checkpoint)
        console.print(f"[bold]3/3[/] live pipeline: warming the feature state up from {history}, then "
                      f"{rate:g} transactions/s from {live_from}; alerts → {alerts_db} (Ctrl-C to stop)")
        # the generator's first rows are the history file's rows: the live run starts after them
        warm = warm_from_file(history, "canonical", checkpoint)
        initial = {"initial_state": warm.state, "initial_position": warm.last_position} if warm is not None else {}
        config = GeneratorConfig(cards=cards, days=history_days + live_days, seed=seed, start=start)
        source = GeneratorSource(config, rate=rate, pace_from=live_from)
        stats = run_pipeline(
            source, bundle, store, checkpoint, live_view=live_view, mismatch=CheckpointMismatch, role="demo",
            batch_size=500, checkpoint_rows=100_000, checkpoint_seconds=10.0, **initial,
        )
        if server is not None and stats.finished:
            serve_until_stopped(server, where)
    finally:
        if server is not None:
            stop_dashboard(server)


def serve_until_stopped(server: subprocess.Popen, where: str) -> None:
    """The stream has ended: keep the dashboard up for the analyst until Ctrl-C or SIGTERM."""
    console.print(f"the stream has ended; the dashboard stays on [bold]{where}[/] until Ctrl-C")
    stopped = threading.Event()
    previous = {s: signal.signal(s, lambda signum, frame: stopped.set()) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        while not stopped.is_set() and server.poll() is None:
            stopped.wait(0.5)
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
