"""``fraudstream config``: the effective settings as a settings file, each value's origin beside it, secrets masked."""

from __future__ import annotations

import typer

from fraudstream.services.cli.common import settings
from fraudstream.services.settings import UNSET, SettingsError


def config(
    section: str | None = typer.Option(None, "--section", metavar="NAME", help="Show only this section, e.g. kafka."),
    changed: bool = typer.Option(False, "--changed", help="Show only the settings set by a file, a variable or a flag."),
) -> None:
    """Print every setting, its origin (default, file, env or flag) and its variable; secrets show as ********.

    Order, lowest first: defaults, the --config file (or $FRAUDSTREAM_CONFIG), FRAUDSTREAM_* variables, flags.
    """
    rows = settings().effective()
    known = list(dict.fromkeys(key.partition(".")[0] for key, *_ in rows))
    if section is not None and section not in known:
        raise SettingsError(f"unknown section {section!r}; known sections: {', '.join(known)}")
    if changed:
        rows = [row for row in rows if row[2] != "default"]
    for line in render(rows, section):
        typer.echo(line)  # stdout, unwrapped: meant to be read, grepped or kept as a settings file


def render(rows: list[tuple[str, str, str, str]], section: str | None = None) -> list[str]:
    """TOML lines (unset values commented out), each with ``# origin · VARIABLE``, from :meth:`Settings.effective`."""
    lines: list[str] = []
    current = ""
    for key, shown, origin, variable in rows:
        name, _, field = key.partition(".")
        if section is not None and name != section:
            continue
        if name != current:
            lines.extend(([""] if lines else []) + [f"[{name}]"])
            current = name
        if shown == UNSET:
            lines.append(f"# {field} = {UNSET}  # {variable}")
        elif origin.startswith("env "):
            lines.append(f"{field} = {shown}  # {origin}")
        else:
            lines.append(f"{field} = {shown}  # {origin} · {variable}")
    return lines
