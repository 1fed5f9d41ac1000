"""The ``fraudstream`` command through Typer's test runner: help, friendly errors, and a small happy path."""

from __future__ import annotations

import csv
import json
import sqlite3
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import typer
from support import messy_copy
from typer.testing import CliRunner, Result

from fraudstream.services.cli import app

runner = CliRunner()
WIDE = {"COLUMNS": "200"}  # the width of the console Rich draws to, so long messages are not wrapped


def invoke(*args: str, env: dict[str, str] | None = None) -> Result:
    return runner.invoke(app, [str(a) for a in args], env=env or WIDE)


def ok(*args: str) -> Result:
    result = invoke(*args)
    assert result.exit_code == 0, (result.output, result.exception)
    return result


@pytest.fixture(scope="module")
def work(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A tiny generated file and a model trained on it, through the CLI itself."""
    root = tmp_path_factory.mktemp("cli")
    data, model = root / "data.csv", root / "model"
    ok("generate", "--out", data, "--cards", "300", "--days", "4", "--seed", "1")
    ok("train", "--data", data, "--model-out", model)
    return {"root": root, "data": data, "model": model}


# --------------------------------------------------------------------------- help


COMMANDS = typer.main.get_command(app).commands  # type: ignore[attr-defined]


def test_the_app_lists_every_command() -> None:
    assert {"demo", "generate", "train", "score", "evaluate", "run"} <= set(COMMANDS)
    result = ok("--help")
    for name in COMMANDS:
        assert name in result.output


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_help_of_every_command_lists_its_options(command: str) -> None:
    result = ok(command, "--help")
    options = [opt for param in COMMANDS[command].params for opt in (*param.opts, *param.secondary_opts) if opt.startswith("-")]
    assert len(options) >= 2
    missing = [opt for opt in options if opt not in result.output]
    assert missing == [], result.output
    assert "--help" in result.output


# --------------------------------------------------------------------------- errors


def check_error(result: Result, *expected: str, code: int = 2) -> str:
    """Exit ``code`` (2: bad input), no traceback, a message starting with ``error:`` that says ``expected``; returns it."""
    assert result.exit_code == code, (result.output, result.exception)
    assert isinstance(result.exception, SystemExit)  # typer.Exit, not a crash
    assert "Traceback" not in result.output
    first = result.stderr.strip().splitlines()[0]
    assert first.startswith("error: "), result.stderr
    message = " ".join(result.stderr.split())
    for text in expected:
        assert text in message, message
    return first


def args_for(command: str, work: dict[str, Path], data: Path | None = None, model: Path | None = None) -> list:
    data = data if data is not None else work["data"]
    model = model if model is not None else work["model"]
    root = work["root"]
    return {
        "train": ["train", "--data", data, "--model-out", root / "unused-model"],
        "score": ["score", "--data", data, "--model", model, "--out", root / "unused.csv"],
        "evaluate": ["evaluate", "--data", data, "--model", model, "--json"],
        "run": ["run", "--source", "file", "--data", data, "--model", model, "--store", "memory://", "--no-live-view"],
    }[command]


DATA_COMMANDS = ["train", "score", "evaluate", "run"]


@pytest.mark.parametrize("command", DATA_COMMANDS)
def test_missing_data_file(command: str, work: dict[str, Path]) -> None:
    missing = work["root"] / "nope.csv"
    check_error(invoke(*args_for(command, work, data=missing)), "no such data file", str(missing))


@pytest.mark.parametrize("command", DATA_COMMANDS)
def test_unknown_format(command: str, work: dict[str, Path]) -> None:
    result = invoke(*args_for(command, work), "--format", "bogus")
    check_error(result, "unknown format 'bogus'", "canonical", "sparkov", "handbook", ".toml")


@pytest.mark.parametrize(
    "command",
    [
        *DATA_COMMANDS[:3],
        pytest.param(
            "run",
        ),
    ],
)
def test_a_txt_data_file(command: str, work: dict[str, Path]) -> None:
    text = work["root"] / "data.txt"
    text.write_text(work["data"].read_text())
    check_error(invoke(*args_for(command, work, data=text)), "unknown file type", ".csv", ".jsonl")


@pytest.mark.parametrize("command", ["score", "evaluate", "run"])
def test_a_model_dir_that_does_not_exist(command: str, work: dict[str, Path]) -> None:
    missing = work["root"] / "no-model"
    result = invoke(*args_for(command, work, model=missing))
    first = check_error(result, str(missing), "directory not found", code=4)  # BundleError: integrity
    assert "no model bundle" in first
    assert f"fraudstream train --data FILE --model-out {missing}" in result.stderr  # the hint on how to make one


@pytest.mark.parametrize("rate", ["0", "-1", "1000.5"])
def test_alert_rate_out_of_range(rate: str, work: dict[str, Path]) -> None:
    result = invoke(*args_for("train", work), "--alert-rate", rate)
    check_error(result, "--alert-rate must be in (0, 1000]", f"got {float(rate)}")
    assert not (work["root"] / "unused-model").exists()


def test_run_file_source_needs_data(work: dict[str, Path]) -> None:
    check_error(invoke("run", "--source", "file", "--model", work["model"], "--store", "memory://", "--no-live-view"),
                "--source file needs --data FILE")


def test_unknown_store_scheme(work: dict[str, Path]) -> None:
    result = invoke(*args_for("run", work)[:-3], "--store", "redis://localhost:6379", "--no-live-view")
    check_error(result, "unknown alert store 'redis'", "memory", "sqlite")


def test_generate_to_an_unknown_file_type(tmp_path: Path) -> None:
    out = tmp_path / "x.parquet"
    check_error(invoke("generate", "--out", out, "--cards", "10", "--days", "1"),
                "cannot tell the format", str(out), ".csv", ".jsonl")
    assert not out.exists()


@pytest.mark.parametrize("name", ["export[final].csv", "a[/x].csv"])
def test_errors_quote_paths_with_brackets_verbatim(name: str, work: dict[str, Path]) -> None:
    missing = work["root"] / name
    check_error(invoke(*args_for("train", work, data=missing)), f"no such data file: {missing}")


def test_a_sqlite_store_url_without_a_path(work: dict[str, Path]) -> None:
    check_error(invoke(*args_for("run", work)[:-3], "--store", "sqlite://", "--no-live-view"), "sqlite")


def test_a_checkpoint_that_is_not_a_checkpoint(work: dict[str, Path], tmp_path: Path) -> None:
    junk = tmp_path / "notes.txt"
    junk.write_text("not a checkpoint\n")
    result = invoke(*args_for("run", work)[:-3], "--store", tmp_path / "a.db", "--checkpoint", junk, "--no-live-view")
    check_error(result, str(junk), "--fresh", code=4)  # CheckpointMismatch: integrity


@pytest.mark.parametrize(
    ("make_args", "columns"),
    [
        pytest.param(lambda w: args_for("train", w, data=w["root"] / ("long-" * 20 + ".csv")), "80", id="wrapped-at-80"),
        pytest.param(lambda w: args_for("train", w, data=w["data"].with_suffix(".txt")), "200", id="progress-after-error"),
    ],
)
def test_errors_are_one_line_in_a_log(make_args: Callable, columns: str, work: dict[str, Path]) -> None:
    (work["root"] / "data.txt").write_text(work["data"].read_text())
    result = invoke(*make_args(work), env={"COLUMNS": columns})
    check_error(result)
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr


# --------------------------------------------------------------------------- happy path


def test_generate_train_score_evaluate_run(work: dict[str, Path], tmp_path: Path) -> None:
    data, model = work["data"], work["model"]
    with open(data, newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert 1500 < len(rows) < 4000 and {"transaction_id", "is_fraud", "scenario"} <= set(rows[0])
    assert (model / "bundle.json").is_file()

    scores = tmp_path / "scores.csv"
    result = ok("score", "--data", data, "--model", model, "--out", scores)
    with open(scores, newline="") as handle:
        scored = list(csv.DictReader(handle))
    assert [r["transaction_id"] for r in scored] == [r["transaction_id"] for r in rows]
    assert {r["alert"] for r in scored} == {"0", "1"}
    flagged = {r["transaction_id"] for r in scored if r["alert"] == "1"}
    assert 0 < len(flagged) < len(rows) / 20
    assert all(0.0 <= float(r["score"]) <= 1.0 for r in scored)
    assert all(bool(r["reasons"]) == (r["alert"] == "1") for r in scored)
    assert f"{len(flagged):,} alerts" in result.stderr

    result = ok("evaluate", "--data", data, "--model", model, "--json")
    report = json.loads(result.stdout)
    for key in ("roc_auc", "average_precision", "card_precision_at_100", "recall_at_alert_rate", "per_scenario"):
        assert key in report
    assert 0.5 < report["roc_auc"] <= 1.0
    assert 0.0 < report["average_precision"] <= 1.0
    assert 0.0 <= report["card_precision_at_100"] <= 1.0
    assert 0.0 <= report["recall_at_alert_rate"] <= 1.0
    assert report["transactions"] == len(rows) and report["alerts"] == len(flagged)
    frauds = sum(r["is_fraud"] == "1" for r in rows)
    assert report["frauds"] == frauds > 0
    scenarios = {r["scenario"] for r in rows if r["scenario"]}
    assert set(report["per_scenario"]) == scenarios
    assert sum(m["frauds"] for m in report["per_scenario"].values()) == frauds

    store = tmp_path / "alerts.db"
    result = ok("run", "--source", "file", "--data", data, "--model", model, "--store", store, "--no-live-view",
                "--batch-size", "300")
    assert f"finished: {len(rows):,} read, {len(rows):,} scored, {len(flagged):,} alerts, 0 dead letters" in " ".join(
        result.stderr.split()
    )
    with sqlite3.connect(store) as db:
        stored = {tid for (tid,) in db.execute("SELECT transaction_id FROM alerts")}
    assert len(stored) == len(flagged)
    assert stored == flagged
    assert store.with_suffix(".checkpoint").is_file()

    # run again: it resumes at the end and the store stays as it was
    ok("run", "--source", "file", "--data", data, "--model", model, "--store", store, "--no-live-view")
    with sqlite3.connect(store) as db:
        assert db.execute("SELECT count(*) FROM alerts").fetchone()[0] == len(flagged)


def test_evaluate_shows_the_naive_baselines_fitted_on_the_same_rows(work: dict[str, Path]) -> None:
    from sklearn.ensemble import IsolationForest

    from fraudstream.model.bundle import load_bundle
    from fraudstream.model.evaluate import ranking_metrics
    from fraudstream.model.features.step import INDEX
    from fraudstream.model.scoring import Scorer
    from fraudstream.services.cli.common import read_history

    report = json.loads(ok("evaluate", "--data", work["data"], "--model", work["model"], "--json").stdout)
    naive, amount = report["baselines"]["naive_iforest"], report["baselines"]["amount_alone"]
    n = report["transactions"]
    assert naive["transactions"] == amount["transactions"] == n and naive["frauds"] == report["frauds"]
    assert f"fitted on these {n:,} evaluated rows themselves" in naive["about"]
    assert "amount, hour of day, day of week, distance from home" in naive["about"]  # the generator has coordinates
    # the same figure a user gets from the five lines, on the same rows
    txns = [t for _, t in read_history(work["data"], "canonical", work["root"] / "dl.jsonl", event_order=False)]
    X = Scorer(load_bundle(work["model"])).features(txns)
    cols = np.column_stack([np.expm1(X[:, INDEX["amount_log"]]), X[:, INDEX["hour_of_day"]], X[:, INDEX["day_of_week"]],
                            X[:, INDEX["distance_home_km"]]])
    forest = IsolationForest(n_estimators=100, random_state=0, n_jobs=1).fit(cols)
    labels = np.array([t.is_fraud for t in txns])
    assert naive["average_precision"] == pytest.approx(ranking_metrics(-forest.score_samples(cols), labels)["average_precision"])
    text = ok("evaluate", "--data", work["data"], "--model", work["model"]).stdout
    assert "naive IsolationForest" in text and "amount alone" in text and "× the naive IsolationForest's" in text


def test_train_takes_the_detector_kind_and_refuses_an_unknown_one(work: dict[str, Path]) -> None:
    model = work["root"] / "iforest-model"
    ok("train", "--data", work["data"], "--model-out", model, "--detector", "isolation_forest", "--trees", "20")
    manifest = json.loads((model / "bundle.json").read_text())
    assert manifest["detector"]["kind"] == "isolation_forest" and manifest["detector"]["metadata"]["n_estimators"] == 20
    default = json.loads((work["model"] / "bundle.json").read_text())["metadata"]["detector"]
    assert default["kind"] == "evidence" and default["labels"]["given"] is True  # the generated file is labelled
    result = invoke("train", "--data", work["data"], "--model-out", work["root"] / "nope", "--detector", "magic")
    assert result.exit_code == 2 and "unknown detector kind 'magic'" in result.stderr and "evidence" in result.stderr


def test_a_sqlite_url_store_also_gets_a_checkpoint(work: dict[str, Path], tmp_path: Path) -> None:
    store = tmp_path / "alerts.db"
    ok("run", "--source", "file", "--data", work["data"], "--model", work["model"], "--store", f"sqlite://{store}",
       "--no-live-view")
    assert store.is_file()
    assert store.with_suffix(".checkpoint").is_file()


def test_run_without_a_terminal_prints_a_status_line_for_the_logs(work: dict[str, Path]) -> None:
    result = ok(*args_for("run", work)[:-1], "--live-view")  # asked for the live view, but stdout is no terminal
    status = [line for line in result.stderr.splitlines() if line.startswith("status ")]
    assert status and " read, " in status[0] and " alerts (" in status[0], result.stderr


def _alert_ids(store: Path) -> set[str]:
    with sqlite3.connect(store) as db:
        return {tid for (tid,) in db.execute("SELECT transaction_id FROM alerts")}


def test_run_warm_up_replays_history_through_the_state_only(work: dict[str, Path], tmp_path: Path) -> None:
    """A warmed-up run alerts on the live rows exactly as a run that had seen the history, and never on history."""
    data, model = work["data"], work["model"]
    with open(data, newline="") as handle:
        header, *rows = list(csv.reader(handle))
    cut = len(rows) * 3 // 4
    history, live = tmp_path / "history.csv", tmp_path / "live.csv"
    for path, part in ((history, rows[:cut]), (live, rows[cut:])):
        with open(path, "w", newline="") as handle:
            csv.writer(handle).writerows([header, *part])
    live_ids = {row[header.index("transaction_id")] for row in rows[cut:]}

    ok("run", "--source", "file", "--data", data, "--model", model, "--store", tmp_path / "all.db", "--no-live-view")
    seen_history = _alert_ids(tmp_path / "all.db") & live_ids
    cold = tmp_path / "cold.db"
    ok("run", "--source", "file", "--data", live, "--model", model, "--store", cold, "--no-live-view")
    warm = tmp_path / "warm.db"
    result = ok("run", "--source", "file", "--data", live, "--model", model, "--store", warm, "--no-live-view",
                "--warm-up", history)
    assert f"with {cut:,} transactions from" in " ".join(result.stderr.split())
    assert _alert_ids(warm) == seen_history  # history is never scored, and the live rows see it
    assert len(_alert_ids(cold)) > len(seen_history)  # without it: the warm-up artefact (cards without history)

    again = ok("run", "--source", "file", "--data", live, "--model", model, "--store", warm, "--no-live-view",
               "--warm-up", history)  # resumes from the checkpoint: the history must not count twice
    assert "already includes the warm-up" in " ".join(again.stderr.split()) and _alert_ids(warm) == seen_history


def test_warm_up_is_refused_for_kafka(work: dict[str, Path]) -> None:
    check_error(invoke("run", "--source", "kafka", "--model", work["model"], "--warm-up", work["data"]), "--warm-up")


def test_run_and_score_agree_on_a_file_with_retries_reused_ids_and_rows_out_of_order(
    work: dict[str, Path], tmp_path: Path
) -> None:
    data = tmp_path / "messy.csv"
    counts = messy_copy(work["data"], data)
    scores = tmp_path / "scores.csv"
    scored_run = ok("score", "--data", data, "--model", work["model"], "--out", scores,
                    "--dead-letters", tmp_path / "score.dead_letters.jsonl")
    with open(scores, newline="") as handle:
        scored = list(csv.DictReader(handle))
    ids = [r["transaction_id"] for r in scored]
    assert len(ids) == len(set(ids))  # nothing scored twice
    want = {r["transaction_id"]: float(r["score"]) for r in scored if r["alert"] == "1"}
    assert len(want) > 5
    assert f"{counts['retries']:,} duplicates" in " ".join(scored_run.stderr.split())
    score_letters = [json.loads(line) for line in (tmp_path / "score.dead_letters.jsonl").read_text().splitlines()]
    assert sum(letter["field"] == "transaction_id" for letter in score_letters) == counts["reused"]
    assert sum(letter["field"] == "timestamp" for letter in score_letters) == counts["impossible"]

    store = tmp_path / "alerts.db"
    result = ok("run", "--source", "file", "--data", data, "--model", work["model"], "--store", store,
                "--no-live-view", "--batch-size", "70")
    summary = " ".join(result.stderr.split())
    assert f"{len(ids):,} scored" in summary and f"{len(want):,} alerts" in summary
    assert f"{counts['reused'] + counts['impossible']:,} dead letters, {counts['retries']:,} duplicates" in summary
    with sqlite3.connect(store) as db:
        stored = dict(db.execute("SELECT transaction_id, score FROM alerts").fetchall())
        letters = db.execute("SELECT field, count(*) FROM dead_letters GROUP BY field").fetchall()
    assert stored == want
    assert dict(letters) == {"transaction_id": counts["reused"], "timestamp": counts["impossible"]}
