"""``fraudstream package-lambda``: the AWS Lambda deployment zip of the scoring API, checked against Lambda's limits."""

from __future__ import annotations

import os
from pathlib import Path

import typer
from rich.markup import escape
from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from fraudstream.services.cli.common import console, fail, from_settings, settings

INPUT = "Input"
TARGET = "Lambda runtime"
OUTPUT = "Output"
DEFAULT_OUT = Path("var") / "lambda" / "fraudstream-lambda.zip"


def cache_root() -> Path:
    """Where downloads and installed dependency sets are kept (``$FRAUDSTREAM_CACHE``, like the service scripts)."""
    return Path(os.environ.get("FRAUDSTREAM_CACHE") or Path.home() / ".cache" / "fraudstream")


def package_lambda(
    model: Path | None = typer.Option(None, "--model", metavar="DIR", help="Model bundle directory to ship in the zip.",
                                      show_default=from_settings("paths.model"), rich_help_panel=INPUT),
    out: Path = typer.Option(DEFAULT_OUT, "--out", metavar="FILE", help="The zip to write (replaced if present).",
                             rich_help_panel=OUTPUT),
    python: str = typer.Option("3.12", "--python-version", metavar="X.Y",
                               help="Lambda runtime: 3.12 (Amazon Linux 2023) or 3.11 (Amazon Linux 2).",
                               rich_help_panel=TARGET),
    no_opensearch: bool = typer.Option(False, "--no-opensearch",
                                       help="Leave out the OpenSearch client (shipped for an OpenSearch alert store).",
                                       rich_help_panel=TARGET),
    build_python: Path | None = typer.Option(None, "--build-python", metavar="PATH",
                                             help="A Python of the runtime's version, to compile the C kernel and "
                                                  "the bytecode for it.",
                                             show_default="pythonX.Y on PATH or pyenv's", rich_help_panel=TARGET),
) -> None:
    """Build the Lambda zip (handler lambda_function.lambda_handler): the scoring API's serving path, its C kernel and a model bundle, for x86_64; refuses one over Lambda's size limits."""
    from fraudstream.services.packaging.lambda_zip import HANDLER, UNZIPPED_LIMIT, ZIPPED_LIMIT, build, mib

    config = settings(paths__model=model)
    if not config.paths.model.is_dir():
        raise fail(f"no model bundle at {config.paths.model}; give --model DIR (fraudstream train makes one)")
    with Progress(SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn(), console=console,
                  transient=True) as progress:
        task = progress.add_task("starting", total=None)
        report = build(config.paths.model, out, python=python, with_opensearch=not no_opensearch,
                       build_python=build_python, cache=cache_root(), step=lambda text: progress.update(task, description=escape(text)))
    table = Table(title=f"{report.path} for {report.runtime.identifier} x86_64, handler {HANDLER}")
    table.add_column("size")
    table.add_column("bytes", justify="right")
    table.add_column("Lambda's limit", justify="right")
    table.add_column("used", justify="right")
    for name, size, limit in (("zipped", report.zipped_bytes, ZIPPED_LIMIT), ("unzipped", report.unzipped_bytes, UNZIPPED_LIMIT)):
        table.add_row(name, f"{size:,} ({mib(size)})", mib(limit), f"{size / limit:.0%}")
    console.print(table)
    console.print("largest: " + ", ".join(f"{escape(name)} {mib(size)}" for name, size in report.largest), soft_wrap=True)
    console.print(f"scorer: {escape(report.kernel)}", soft_wrap=True)
    if not report.bytecode:
        console.print(f"no bytecode: no Python {python} found to precompile with (slower cold start); see --build-python",
                      soft_wrap=True)
