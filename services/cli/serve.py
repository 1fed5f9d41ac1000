"""``fraudstream serve``: the scoring API under uvicorn (also what a Knative Service runs: ``$PORT`` is honoured
and SIGTERM drains the requests in flight)."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import typer

from fraudstream.model.errors import require_installed
from fraudstream.services.cli.common import STORE_HELP, config_file, console, fail, from_settings, load_model, settings
from fraudstream.services.settings import CONFIG_ENV

SERVER, MODEL_STORES, SECURITY = "Server", "Model & stores", "Security"
DEFAULT_PORT = 8000
APP_FACTORY = "fraudstream.services.api.app:create_app"


def listen_port(port: int | None, environ: dict[str, str] | os._Environ[str] = os.environ) -> int:
    """``--port`` if given, else ``$PORT`` (Knative sets it), else 8000."""
    if port is not None:
        return port
    value = environ.get("PORT", "").strip()
    if not value:
        return DEFAULT_PORT
    if not value.isdigit() or not 1 <= int(value) <= 65535:
        raise fail(f"$PORT must be a port number (1-65535), got {value!r}")
    return int(value)


def serve(
    host: str = typer.Option("127.0.0.1", metavar="ADDRESS", help="Address to listen on (0.0.0.0 in a container).", rich_help_panel=SERVER),
    port: int | None = typer.Option(None, min=1, max=65535, metavar="PORT", help="Port to listen on.", show_default=f"$PORT, else {DEFAULT_PORT}", rich_help_panel=SERVER),
    workers: int = typer.Option(1, min=1, metavar="N", help="Worker processes (with memory state, each keeps its own).", rich_help_panel=SERVER),
    drain_seconds: float = typer.Option(30.0, min=0.0, metavar="SECONDS", help="On SIGTERM, wait this long for requests in flight.", rich_help_panel=SERVER),
    access_log: bool = typer.Option(False, "--access-log", help="Log every request (method, path, status).", rich_help_panel=SERVER),
    model: Path | None = typer.Option(None, "--model", metavar="DIR", help="Model bundle directory.", show_default=from_settings("paths.model"), rich_help_panel=MODEL_STORES),
    store: str | None = typer.Option(None, metavar="URL", help=STORE_HELP, show_default=from_settings("store.url"), rich_help_panel=MODEL_STORES),
    state: str | None = typer.Option(None, metavar="URL", help="Card and merchant state: memory (this process) or redis://HOST:PORT/DB (shared).", show_default=from_settings("api.state"), rich_help_panel=MODEL_STORES),
    insecure_no_auth: bool = typer.Option(False, "--insecure-no-auth", help="Serve without API keys (local development only).", rich_help_panel=SECURITY),
) -> None:
    """Serve the scoring API: POST /v1/score, alerts and labels, health and metrics.

    API keys come from FRAUDSTREAM_API_KEYS or FRAUDSTREAM_API_KEYS_FILE (never a flag); labelling keys from FRAUDSTREAM_API_LABEL_KEYS.
    """
    require_installed("fastapi", "the scoring API")
    require_installed("uvicorn", "the scoring API")
    import uvicorn

    from fraudstream.services.api.app import create_app

    config = settings(paths__model=model, store__url=store, api__state=state,
                      api__insecure_no_auth=True if insecure_no_auth else None)
    listen = listen_port(port)
    load_model(config.paths.model)  # a missing or damaged bundle ends here, with a hint, not in a worker
    app = create_app(config)  # refuses to build without an API key
    # Worker processes build their own app from the environment: hand them this command's choices.
    os.environ["FRAUDSTREAM_MODEL"] = str(config.paths.model)
    os.environ["FRAUDSTREAM_STORE"] = config.store.url
    os.environ["FRAUDSTREAM_API_STATE"] = config.api.state
    if config.api.insecure_no_auth:
        os.environ["FRAUDSTREAM_API_INSECURE_NO_AUTH"] = "true"
    if config_file() is not None:
        os.environ[CONFIG_ENV] = str(config_file())
    console.print(f"scoring API on http://{host}:{listen} ({workers} worker(s), model {config.paths.model}, "
                  f"state {config.api.state}, store {config.store.url})")
    target = app if workers == 1 else APP_FACTORY
    # uvicorn drains on SIGTERM, then re-raises the signal to the handler it found: with this one the
    # process then ends normally (exit 0), so a supervisor tells a clean drain from a crash.
    signal.signal(signal.SIGTERM, lambda signum, frame: None)
    uvicorn.run(target, factory=workers > 1, host=host, port=listen, workers=workers, server_header=False,
                timeout_graceful_shutdown=drain_seconds, access_log=access_log, log_level="info", proxy_headers=False)
