"""The ``--help`` of every command as an 80-column terminal shows it, and the default paths the commands share."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import typer
from rich.text import Text
from typer.core import TyperOption
from typer.testing import CliRunner

from fraudstream.services import defaults
from fraudstream.services.cli import app
from fraudstream.services.settings import CONFIG_ENV, Settings

runner = CliRunner()
COMMANDS = typer.main.get_command(app).commands  # type: ignore[attr-defined]
NARROWEST = 30  # characters a description gets at 80 columns, at least
ROW = re.compile(r"^│ (?P<body>.*) │$")


def help_at_80(command: str) -> str:
    result = runner.invoke(app, [command, "--help"], env={"COLUMNS": "80", "TERMINAL_WIDTH": "80"})
    assert result.exit_code == 0, (result.output, result.exception)
    return result.output


def options(command: str) -> list[TyperOption]:
    return [p for p in COMMANDS[command].params if isinstance(p, TyperOption) and p.help and not p.hidden]


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_help_texts_survive_rich_markup(command: str) -> None:
    # Rich reads "[default: x]" in a help string as a style tag and drops it, leaving "Checkpoint file ."
    texts = [COMMANDS[command].help or ""] + [p.help for p in options(command)]
    lost = [t for t in texts if Text.from_markup(t).plain != t]
    assert lost == []


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_no_stray_space_before_a_full_stop_and_nothing_cut_off(command: str) -> None:
    text = help_at_80(command)
    assert re.search(r" \.\s*(│|$)", text, re.MULTILINE) is None, text
    assert "…" not in text, text


def description_widths(command: str, text: str) -> dict[str, int]:
    """Characters the description column gets on the first row of each option, from the rendered help."""
    widths: dict[str, int] = {}
    lines = text.splitlines()
    for option in options(command):
        name = option.opts[0]
        first_word = option.help.split()[0]
        for line in lines:
            row = ROW.match(line)
            if row is None or not re.search(rf"(^|\s){re.escape(name)}(\s|…|$)", row["body"]):
                continue
            body = row["body"]
            start = body.find(" " + first_word, body.find(name) + len(name))
            assert start > 0, (name, line)
            widths[name] = len(body) - start - 1
            break
        else:
            pytest.fail(f"{name} is not on a row of its own in:\n{text}")
    return widths


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_descriptions_are_readable_at_80_columns(command: str) -> None:
    text = help_at_80(command)
    narrow = {name: width for name, width in description_widths(command, text).items() if width < NARROWEST}
    assert narrow == {}, text


@pytest.mark.parametrize("command", sorted(c for c in COMMANDS if len(options(c)) > 12))
def test_commands_with_many_options_group_them_in_panels(command: str) -> None:
    panels = {getattr(p, "rich_help_panel", None) for p in options(command)}
    assert None not in panels and len(panels) >= 3


def test_run_store_names_every_kind_of_store() -> None:
    store = next(p for p in options("run") if p.name == "store")
    for kind in ("sqlite://", "elasticsearch://", "opensearch://", "memory://"):
        assert kind in store.help


# --------------------------------------------------------------------------- defaults


def default(command: str, name: str) -> object:
    return next(p for p in COMMANDS[command].params if p.name == name).default


def test_run_score_evaluate_and_the_dashboard_use_the_model_the_demo_trains() -> None:
    demo_model = defaults.demo_paths(Path(str(default("demo", "directory")))).model
    assert Settings().paths.model == demo_model == defaults.MODEL_DIR
    for command in ("run", "score", "evaluate", "dashboard"):
        assert default(command, "model") is None, command  # None: the settings' paths.model


def test_the_dashboard_shows_the_store_run_writes_to_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    from fraudstream.dashboard import data

    for name in (data.STORE_ENV, data.MODEL_ENV, CONFIG_ENV):
        monkeypatch.delenv(name, raising=False)
    assert default("run", "store") is None and default("dashboard", "store") is None  # None: the settings' store.url
    assert Settings().store.url == data.store_url() == defaults.STORE
    assert Path(data.model_dir()) == defaults.MODEL_DIR
    assert default("run", "state_dir") is None and Settings().kafka.state_dir == defaults.KAFKA_STATE_DIR


def test_the_demo_keeps_its_own_store_so_run_after_the_demo_does_not_meet_the_demos_checkpoint() -> None:
    demo = defaults.demo_paths(defaults.DEMO_DIR)
    assert str(demo.store) != defaults.STORE
    assert demo.checkpoint != Path(defaults.STORE).with_suffix(".checkpoint")
