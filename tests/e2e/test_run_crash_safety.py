"""`fraudstream run` killed with SIGKILL at random points and restarted ends with the same alert store
as an uninterrupted run: nothing lost, nothing doubled. Real processes, real files, real SQLite."""

from __future__ import annotations

import csv
import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

BIN = Path(sys.executable).with_name("fraudstream")


def cli(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run([str(BIN), *args], capture_output=True, text=True, check=check, timeout=600)


def run_args(data: Path, model: Path, store: Path) -> list[str]:
    return [
        "run", "--source", "file", "--data", str(data), "--model", str(model), "--store", str(store),
        "--no-live-view", "--batch-size", "250", "--checkpoint-rows", "1500", "--checkpoint-seconds", "0.2",
    ]


def table(db: Path, name: str) -> list[tuple]:
    with sqlite3.connect(db) as conn:
        return conn.execute(f"SELECT * FROM {name} ORDER BY 1").fetchall()


def alert_count(db: Path) -> int:
    """Alerts stored so far, 0 while the file or its tables do not exist yet."""
    try:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
            return conn.execute("SELECT count(*) FROM alerts").fetchone()[0]
    except sqlite3.OperationalError:
        return 0


@pytest.fixture(scope="module")
def workload(tmp_path_factory) -> tuple[Path, Path]:
    """A generated file with malformed rows mixed in, and a model trained on other history."""
    root = tmp_path_factory.mktemp("crash")
    history, model, data = root / "history.csv", root / "model", root / "stream.csv"
    cli("generate", "--out", str(history), "--cards", "300", "--days", "10", "--seed", "1")
    cli("train", "--data", str(history), "--model-out", str(model))
    clean = root / "clean.csv"
    cli("generate", "--out", str(clean), "--cards", "1500", "--days", "12", "--seed", "2")
    with open(clean, newline="") as src, open(data, "w", newline="") as dst:
        reader = csv.reader(src)
        writer = csv.writer(dst)
        header = next(reader)
        writer.writerow(header)
        amount = header.index("amount")
        for i, row in enumerate(reader):
            if i % 997 == 5:
                bad = list(row)
                bad[amount] = "-3"
                writer.writerow(bad)
            writer.writerow(row)
    return data, model


def test_sigkill_and_restart_gives_the_same_alert_store(workload, tmp_path) -> None:
    data, model = workload
    started = time.perf_counter()
    cli(*run_args(data, model, tmp_path / "straight.db"))
    straight_seconds = time.perf_counter() - started
    expected_alerts = table(tmp_path / "straight.db", "alerts")
    expected_letters = table(tmp_path / "straight.db", "dead_letters")
    assert len(expected_alerts) > 20 and len(expected_letters) > 5

    # Kill on progress, not on a clock: each run is killed a random moment after it has written
    # something new, so every kill lands mid-run however fast or slow the machine is.
    rng = random.Random(int(os.environ.get("CRASH_SEED", "20261129")))
    crashed = tmp_path / "crashed.db"
    for kill in range(3):
        proc = subprocess.Popen([str(BIN), *run_args(data, model, crashed)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        before = alert_count(crashed)
        while alert_count(crashed) <= before and proc.poll() is None:
            time.sleep(0.02)
        time.sleep(rng.uniform(0.0, 0.1) * straight_seconds)
        assert proc.poll() is None, f"the run finished before kill {kill + 1}: {proc.stderr.read().decode()}"
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    last = cli(*run_args(data, model, crashed), check=False)
    assert last.returncode == 0, last.stderr
    assert table(crashed, "alerts") == expected_alerts
    assert table(crashed, "dead_letters") == expected_letters


def test_run_matches_the_batch_scorer(workload, tmp_path) -> None:
    data, model = workload
    cli(*run_args(data, model, tmp_path / "run.db"))
    cli("score", "--data", str(data), "--model", str(model), "--out", str(tmp_path / "scores.csv"))
    with open(tmp_path / "scores.csv", newline="") as handle:
        flagged = {row["transaction_id"]: float(row["score"]) for row in csv.DictReader(handle) if row["alert"] == "1"}
    stored = {row[0]: row[5] for row in table(tmp_path / "run.db", "alerts")}
    assert stored.keys() == flagged.keys()
    assert all(stored[k] == pytest.approx(flagged[k], abs=1e-12) for k in stored)
