"""``fraudstream dashboard``: serve the Streamlit dashboard over an alert store (localhost by default)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import typer

from fraudstream.services.cli.common import console


def app_path() -> Path:
    """The dashboard's Streamlit entry script."""
    import fraudstream.dashboard

    return Path(fraudstream.dashboard.__file__).with_name("app.py")


def command(address: str, port: int) -> list[str]:
    return [sys.executable, "-m", "streamlit", "run", str(app_path()), "--server.headless", "true",
            "--server.address", address, "--server.port", str(port), "--browser.gatherUsageStats", "false",
            "--server.fileWatcherType", "none"]


def dashboard(
    store: str = typer.Option(None, "--store", help="Alert store URL or SQLite path [default: $FRAUDSTREAM_STORE or var/demo/alerts.db]."),
    model: Path = typer.Option(None, "--model", help="Model bundle directory [default: $FRAUDSTREAM_MODEL or var/demo/model]."),
    port: int = typer.Option(8501, "--port", help="Port to serve on."),
    address: str = typer.Option("127.0.0.1", "--address", help="Address to bind (0.0.0.0 exposes it to the network)."),
) -> None:
    """Open the web dashboard: live alerts, search, review queue and trends."""
    env = dict(os.environ)
    if store is not None:
        env["FRAUDSTREAM_STORE"] = store
    if model is not None:
        env["FRAUDSTREAM_MODEL"] = str(model)
    console.print(f"dashboard on [bold]http://{address}:{port}[/] (store {env.get('FRAUDSTREAM_STORE', 'var/demo/alerts.db')}); Ctrl-C to stop")
    try:
        code = subprocess.call(command(address, port), env=env)
    except KeyboardInterrupt:
        code = 0
    raise typer.Exit(code)
