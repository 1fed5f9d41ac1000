"""Fixtures of the end-to-end tests of ``fraudstream serve`` (helpers: ``api_serve``)."""

from __future__ import annotations

import csv
import subprocess
from pathlib import Path

import pytest
from support import BIN


@pytest.fixture(scope="session")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A trained model (``m``) and a file to score with a retried row and a bad row in it (``live.csv``)."""
    root = tmp_path_factory.mktemp("api-e2e")
    for args in (["generate", "--out", "h.csv", "--cards", "300", "--days", "5", "--seed", "9"],
                 ["train", "--data", "h.csv", "--model-out", "m"],
                 ["generate", "--out", "fresh.csv", "--cards", "120", "--days", "3", "--seed", "31",
                  "--start", "2026-03-01T00:00:00+00:00"]):
        subprocess.run([str(BIN), *args], cwd=root, check=True, capture_output=True)
    with open(root / "fresh.csv", newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    bad = {**rows[5], "transaction_id": "bad-amount", "amount": "-4"}
    rows = rows[:40] + [rows[10], bad] + rows[40:]  # a retry of row 10 (same content) and a dead letter
    with open(root / "live.csv", "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return root
