"""``fraudstream config``: the effective settings as a settings file, each value's origin beside it, secrets masked."""

from __future__ import annotations

import json

import typer

from fraudstream.services.cli.common import settings
from fraudstream.services.settings import SettingsError


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
    """TOML lines (unset values commented out), each with ``# origin · VARIABLE``; values as :meth:`effective` shows them."""
    lines: list[str] = []
    current = ""
    for key, shown, origin, variable in rows:
        name, _, field = key.partition(".")
        if section is not None and name != section:
            continue
        if name != current:
            lines.extend(([""] if lines else []) + [f"[{name}]"])
            current = name
        if shown == "(not set)":
            lines.append(f"# {field} = (not set)  # {variable}")
            continue
        value = shown if shown in ("True", "False") or _is_number(shown) else json.dumps(shown)
        value = value.lower() if shown in ("True", "False") else value
        lines.append(f"{field} = {value}  # {origin} · {variable}" if not origin.startswith("env ") else
                     f"{field} = {value}  # {origin}")
    return lines


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True
