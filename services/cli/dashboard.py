"""``fraudstream dashboard``: serve the Streamlit dashboard over an alert store (localhost by default)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import typer

from fraudstream.services.cli.common import STORE_HELP, config_file, console, fail, from_settings, settings
from fraudstream.services.settings import CONFIG_ENV

HEALTH_PATH = "_stcore/health"  # Streamlit's own readiness endpoint, under the base path


def app_path() -> Path:
    """The dashboard's Streamlit entry script."""
    import fraudstream.dashboard

    return Path(fraudstream.dashboard.__file__).with_name("app.py")


def normalise_base_path(base_path: str) -> str:
    """``/fraud/`` or ``fraud`` → ``fraud``: the form Streamlit's server.baseUrlPath takes ('' = served at /)."""
    return base_path.strip().strip("/")


def url(address: str, port: int, base_path: str = "") -> str:
    """Where a browser on this machine reaches the dashboard (a wildcard address is reached on loopback)."""
    host = "127.0.0.1" if address in ("0.0.0.0", "::", "") else address
    prefix = normalise_base_path(base_path)
    return f"http://{host}:{port}/" + (f"{prefix}/" if prefix else "")


def command(address: str, port: int, base_path: str = "") -> list[str]:
    """The streamlit command line: headless, no usage statistics, no file watcher, bound where asked."""
    return [sys.executable, "-m", "streamlit", "run", str(app_path()), "--server.headless", "true",
            "--server.address", address, "--server.port", str(port), "--browser.gatherUsageStats", "false",
            "--server.fileWatcherType", "none", "--client.toolbarMode", "minimal", "--server.baseUrlPath", normalise_base_path(base_path)]


def environment(store: str | None, model: Path | None, config: Path | None = None) -> dict[str, str]:
    """This process's environment with the store, model and settings file the app should read (the app loads
    the same settings as the commands; variables outrank the file, so the command's choices win)."""
    env = dict(os.environ)
    if store is not None:
        env["FRAUDSTREAM_STORE"] = store
    if model is not None:
        env["FRAUDSTREAM_MODEL"] = str(model)
    if config is not None:
        env[CONFIG_ENV] = str(config)
    return env


def check_port_free(address: str, port: int) -> None:
    """Fail with a clear message, before starting Streamlit, when another program listens on the port.

    The probe binds with SO_REUSEADDR, as Streamlit's server does: connections a stopped dashboard left in
    TIME_WAIT (for about a minute after Ctrl-C) do not stop a new server, so they must not count as busy.
    """
    with socket.socket(socket.AF_INET6 if ":" in address else socket.AF_INET) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((address, port))
        except OSError as error:
            raise fail(f"cannot serve the dashboard on {address}:{port}: {address}:{port} is in use by another "
                       f"program ({error.strerror}); stop it or pick another port with --port") from None


def wait_healthy(process: subprocess.Popen, base_url: str, timeout_s: float = 60.0) -> bool:
    """Poll the health endpoint until it answers 200; False if the server exits or the time runs out."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and process.poll() is None:
        try:
            with urllib.request.urlopen(base_url + HEALTH_PATH, timeout=2) as response:
                if response.status == 200:
                    return True
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.25)
    return False


def start(store: str | None, model: Path | None, address: str, port: int, base_path: str = "",
          log: Path | None = None) -> subprocess.Popen:
    """Start the dashboard server in the background (output to ``log``, or discarded) and return it."""
    check_port_free(address, port)
    output = open(log, "ab") if log is not None else subprocess.DEVNULL  # noqa: SIM115 (the child owns it)
    return subprocess.Popen(command(address, port, base_path), env=environment(store, model, config_file()), stdout=output,
                            stderr=subprocess.STDOUT)


def stop(server: subprocess.Popen, patience_s: float = 10.0) -> None:
    """Stop a server from :func:`start`: SIGTERM, then SIGKILL if it has not gone after ``patience_s``."""
    server.terminate()
    try:
        server.wait(timeout=patience_s)
    except subprocess.TimeoutExpired:
        server.kill()
        server.wait()


def dashboard(
    store: str | None = typer.Option(None, "--store", help=STORE_HELP, show_default=from_settings("store.url")),
    model: Path | None = typer.Option(None, "--model", help="Model bundle directory.", show_default=from_settings("paths.model")),
    port: int | None = typer.Option(None, "--port", min=1, max=65535, help="Port to serve on.", show_default=from_settings("dashboard.port")),
    address: str | None = typer.Option(None, "--address", help="Address to bind (0.0.0.0 exposes it to the network).",
                                       show_default=from_settings("dashboard.address")),
    base_path: str | None = typer.Option(None, "--base-path", help="Serve under this path prefix, e.g. /fraud behind an ingress; "
                                         "the readiness probe is then /fraud/_stcore/health.", show_default="no prefix"),
) -> None:
    """Open the web dashboard: live alerts, high risk, trends, map, search, alert detail, review and model."""
    config = settings(store__url=store, paths__model=model, dashboard__port=port, dashboard__address=address,
                      dashboard__base_path=base_path)
    address, port, base_path = config.dashboard.address, config.dashboard.port, config.dashboard.base_path
    check_port_free(address, port)
    env = environment(config.store.url, config.paths.model, config_file())
    console.print(f"dashboard on [bold]{url(address, port, base_path)}[/] (store {config.store.url}); "
                  "Ctrl-C to stop")
    try:
        code = subprocess.call(command(address, port, base_path), env=env)
    except KeyboardInterrupt:
        code = 0
    raise typer.Exit(code)
