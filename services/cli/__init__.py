"""The ``fraudstream`` command: one Typer app, one module per sub-command."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.markup import escape

from fraudstream.model.errors import FraudstreamError, MissingExtra, exit_codes
from fraudstream.services.cli.common import CONFIG_FILE, console
from fraudstream.services.cli.config import config
from fraudstream.services.cli.dashboard import dashboard
from fraudstream.services.cli.demo import demo
from fraudstream.services.cli.evaluate import evaluate
from fraudstream.services.cli.generate import generate
from fraudstream.services.cli.package_lambda import package_lambda
from fraudstream.services.cli.produce import produce
from fraudstream.services.cli.run import run
from fraudstream.services.cli.score import score
from fraudstream.services.cli.serve import serve
from fraudstream.services.cli.train import train

EXIT_CODES = "\n".join(["Exit codes:", *(f"  {code}  {meaning}" for code, meaning in exit_codes())])

app = typer.Typer(
    name="fraudstream",
    help="Real-time fraud detection for card transactions. Start with: fraudstream demo",
    epilog=EXIT_CODES,
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
app.command()(demo)
app.command()(generate)
app.command()(train)
app.command()(score)
app.command()(evaluate)
app.command()(run)
app.command()(produce)
app.command()(dashboard)
app.command()(serve)
app.command()(config)
app.command(name="package-lambda")(package_lambda)


@app.callback()
def settings_file(
    ctx: typer.Context,
    config_path: Path | None = typer.Option(
        None, "--config", metavar="FILE", envvar="FRAUDSTREAM_CONFIG", show_envvar=False,
        help="Settings file (TOML; see fraudstream config). Flags, then FRAUDSTREAM_* variables, outrank it.",
        show_default="$FRAUDSTREAM_CONFIG",
    ),
) -> None:
    """Real-time fraud detection for card transactions. Start with: fraudstream demo"""
    token = CONFIG_FILE.set(config_path)  # read by each command when it loads its settings (cli.common.settings)
    ctx.call_on_close(lambda: CONFIG_FILE.reset(token))


def report(error: FraudstreamError) -> int:
    """Print ``error`` as one red ``error:`` line (no traceback) and return its exit code."""
    text = "; ".join(line.strip() for line in str(error).splitlines() if line.strip()) or type(error).__name__
    console.print(f"[bold red]error:[/] {escape(text)}", soft_wrap=True)
    return error.exit_code


def main() -> None:
    """Console-script entry point: a fraudstream error that escapes a command ends as one line and its exit code.

    Any other exception is a bug and keeps its traceback; an optional library imported without its
    guard still ends as the install hint.
    """
    try:
        app()
    except FraudstreamError as error:
        raise SystemExit(report(error)) from None
    except ModuleNotFoundError as error:
        missing = MissingExtra.from_error(error)
        if missing is None:
            raise
        raise SystemExit(report(missing)) from None
