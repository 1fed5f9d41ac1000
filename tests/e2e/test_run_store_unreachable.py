"""`fraudstream run` against an alert store nobody answers at (a mistyped URL): SIGTERM or Ctrl-C stops it at
once with the checkpoint untouched, and without a signal it fails with one clear line after the bounded
first-contact wait. Real processes, a real port with nothing behind it."""

from __future__ import annotations

import csv
import io
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest
from support import BIN, free_port

pytestmark = pytest.mark.slow

ROWS_DONE = 300  # rows a first run stores in SQLite and checkpoints, before the file grows
PROMPT_S = 5.0  # a stop while waiting for the store must take about a second; a loaded machine gets some slack
READY_S = 120.0  # starting the CLI and reaching the store on a loaded machine: a generous deadline


def cli(*args: str) -> subprocess.CompletedProcess:
    done = subprocess.run([str(BIN), *args], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr
    return done


@pytest.fixture(scope="module")
def resumable(tmp_path_factory) -> tuple[Path, Path, Path]:
    """A model, a file and a checkpoint ROWS_DONE rows into it (the file grew after that run)."""
    root = tmp_path_factory.mktemp("unreachable")
    cli("generate", "--out", str(root / "history.csv"), "--cards", "200", "--days", "5", "--seed", "1")
    cli("train", "--data", str(root / "history.csv"), "--model-out", str(root / "model"))
    cli("generate", "--out", str(root / "full.csv"), "--cards", "300", "--days", "3", "--seed", "2")
    lines = (root / "full.csv").read_text().splitlines(keepends=True)
    stream, checkpoint = root / "stream.csv", root / "stream.checkpoint"
    stream.write_text("".join(lines[: ROWS_DONE + 1]))
    cli("run", "--source", "file", "--data", str(stream), "--model", str(root / "model"), "--store",
        str(root / "alerts.db"), "--checkpoint", str(checkpoint), "--no-live-view")
    # The next row is malformed: its dead letter must reach the store before the checkpoint may move on.
    header, row = next(csv.reader(lines[:1])), next(csv.reader(lines[ROWS_DONE + 1: ROWS_DONE + 2]))
    row[header.index("amount")] = "-3"
    bad = io.StringIO()
    csv.writer(bad).writerow(row)
    stream.write_text("".join([*lines[: ROWS_DONE + 1], bad.getvalue(), *lines[ROWS_DONE + 1:]]))
    assert checkpoint.exists() and len(lines) > 2 * ROWS_DONE
    return root / "model", stream, checkpoint


def start_run(resumable: tuple[Path, Path, Path], log: Path, *extra: str) -> subprocess.Popen:
    model, stream, checkpoint = resumable
    args = [str(BIN), "run", "--source", "file", "--data", str(stream), "--model", str(model),
            "--store", f"elasticsearch://127.0.0.1:{free_port()}", "--checkpoint", str(checkpoint),
            "--no-live-view", "--batch-size", "50", "--checkpoint-rows", "1", "--checkpoint-seconds", "0", *extra]
    with log.open("wb") as out:
        return subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)


def wait_for_retries(process: subprocess.Popen, log: Path) -> None:
    """Until the run says it is retrying the store (so the signal lands while it waits for it)."""
    deadline = time.monotonic() + READY_S
    while "retrying" not in log.read_text(errors="replace"):
        assert process.poll() is None, f"the run ended before waiting for the store:\n{log.read_text()}"
        assert time.monotonic() < deadline, f"the run never reported retrying the store:\n{log.read_text()}"
        time.sleep(0.05)


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_a_run_waiting_for_a_store_that_never_answered_stops_at_once_on_a_signal(
    resumable: tuple[Path, Path, Path], tmp_path: Path, signum: int
) -> None:
    checkpoint = resumable[2]
    before = checkpoint.read_bytes()
    log = tmp_path / "run.log"
    process = start_run(resumable, log)
    try:
        wait_for_retries(process, log)
        signalled = time.monotonic()
        process.send_signal(signum)
        code = process.wait(timeout=120)
        took = time.monotonic() - signalled
    finally:
        process.kill()
        process.wait()
    output = log.read_text(errors="replace")
    assert took < PROMPT_S, f"took {took:.1f} s to stop:\n{output}"
    assert code == 0, output  # a clean stop, not a crash
    assert f"stopped after {ROWS_DONE:,}" in output, output  # nothing new counted as done
    assert checkpoint.read_bytes() == before  # nothing was stored, so nothing is committed


def test_a_store_that_never_answers_ends_the_run_with_one_clear_line_after_the_first_contact_wait(
    resumable: tuple[Path, Path, Path], tmp_path: Path
) -> None:
    checkpoint = resumable[2]
    before = checkpoint.read_bytes()
    log = tmp_path / "run.log"
    started = time.monotonic()
    process = start_run(resumable, log, "--store-first-contact", "3")
    try:
        code = process.wait(timeout=300)
    finally:
        process.kill()
        process.wait()
    took = time.monotonic() - started
    output = log.read_text(errors="replace")
    errors = [line for line in output.splitlines() if line.startswith("error:")]
    assert code != 0, output
    assert len(errors) == 1 and "has not answered in the 3 s since the run started" in errors[0], output
    assert "127.0.0.1" in errors[0] and "--store" in errors[0]
    assert took >= 3.0  # it did wait the first-contact time
    assert "Traceback" not in output
    assert checkpoint.read_bytes() == before


def test_run_help_states_the_first_contact_wait() -> None:
    done = subprocess.run([str(BIN), "run", "--help"], capture_output=True, text=True, timeout=120,
                          env={**os.environ, "COLUMNS": "200"})
    option = done.stdout[done.stdout.index("--store-first-contact"):]
    option = option[: option.index("╰")]  # to the end of its panel
    assert "has not answered once in this long since the start" in option and "[default: 60.0]" in option
