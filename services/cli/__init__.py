"""The ``fraudstream`` command: one Typer app, one module per sub-command."""

from __future__ import annotations

import typer

from fraudstream.services.cli.dashboard import dashboard
from fraudstream.services.cli.demo import demo
from fraudstream.services.cli.evaluate import evaluate
from fraudstream.services.cli.generate import generate
from fraudstream.services.cli.produce import produce
from fraudstream.services.cli.run import run
from fraudstream.services.cli.score import score
from fraudstream.services.cli.train import train

app = typer.Typer(
    name="fraudstream",
    help="Real-time fraud detection for card transactions. Start with: fraudstream demo",
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


def main() -> None:
    """Console-script entry point."""
    app()
