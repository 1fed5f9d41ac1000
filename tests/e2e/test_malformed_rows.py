"""Malformed rows of many kinds all land in dead letters with a reason, and every valid row is scored,
through the real CLI (`run` into SQLite and `score` to CSV), for JSON Lines and CSV input."""

from __future__ import annotations

import csv
import json
import re
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

BIN = Path(sys.executable).with_name("fraudstream")

GOOD = {
    "timestamp": "2026-02-01T10:00:00+00:00", "card_id": "c1", "merchant_id": "m1", "amount": 25.0,
    "currency": "USD", "card_lat": 40.7, "card_lon": -74.0, "merchant_lat": 40.7, "merchant_lon": -74.0,
}

# (what is wrong, the JSON line, the field the dead letter must name; None = the row itself)
MALFORMED: list[tuple[str, str, str | None]] = [
    ("not json", '{"transaction_id": "x1", "amount": ', None),
    ("not an object", "[1, 2, 3]", None),
    ("a bare string", '"hello"', None),
    ("missing id", json.dumps({k: v for k, v in GOOD.items()}), "transaction_id"),
    ("missing card", json.dumps({**GOOD, "transaction_id": "x5", "card_id": None}), "card_id"),
    ("missing amount", json.dumps({k: v for k, v in {**GOOD, "transaction_id": "x6"}.items() if k != "amount"}), "amount"),
    ("negative amount", json.dumps({**GOOD, "transaction_id": "x7", "amount": -3}), "amount"),
    ("timestamp in 1970", json.dumps({**GOOD, "transaction_id": "x8", "timestamp": "1970-01-01T00:00:00Z"}), "timestamp"),  # zero amounts are valid
    ("NaN amount", '{"transaction_id": "x9", "timestamp": 1769940000000, "card_id": "c", "merchant_id": "m", "amount": NaN}', None),
    ("huge amount", json.dumps({**GOOD, "transaction_id": "x10", "amount": 1e300}), "amount"),
    ("amount as text", json.dumps({**GOOD, "transaction_id": "x11", "amount": "twelve"}), "amount"),
    ("amount as object", json.dumps({**GOOD, "transaction_id": "x12", "amount": {"v": 1}}), "amount"),
    ("naive timestamp", json.dumps({**GOOD, "transaction_id": "x13", "timestamp": "2026-02-01 10:00:00"}), "timestamp"),
    ("garbage timestamp", json.dumps({**GOOD, "transaction_id": "x14", "timestamp": "yesterday"}), "timestamp"),
    ("latitude out of range", json.dumps({**GOOD, "transaction_id": "x15", "merchant_lat": 123.0}), "merchant_lat"),
    ("longitude as text", json.dumps({**GOOD, "transaction_id": "x16", "card_lon": "west"}), "card_lon"),
    ("bad currency", json.dumps({**GOOD, "transaction_id": "x17", "currency": "dollars"}), "currency"),
    ("bad country", json.dumps({**GOOD, "transaction_id": "x18", "country": "USA"}), "country"),
    ("label 2", json.dumps({**GOOD, "transaction_id": "x19", "is_fraud": 2}), "is_fraud"),
    ("huge id", json.dumps({**GOOD, "transaction_id": "x" * 100_000}), "transaction_id"),
    ("huge extra", json.dumps({**GOOD, "transaction_id": "x21", "note": "n" * 50_000}), "note"),
    ("id as list", json.dumps({**GOOD, "transaction_id": ["x22"]}), "transaction_id"),
]


def _jsonl(tmp_path: Path) -> tuple[Path, set[str]]:
    """Generated valid rows with the malformed ones spread through them."""
    clean = tmp_path / "clean.jsonl"
    subprocess.run([str(BIN), "generate", "--out", str(clean), "--cards", "300", "--days", "3", "--seed", "5"],
                   check=True, capture_output=True)
    good_lines = clean.read_text().splitlines()
    mixed, valid_ids = tmp_path / "mixed.jsonl", set()
    step = max(1, len(good_lines) // (len(MALFORMED) + 1))
    with open(mixed, "w") as out:
        bad = iter(MALFORMED)
        for i, line in enumerate(good_lines):
            out.write(line + "\n")
            valid_ids.add(json.loads(line)["transaction_id"])
            if i % step == step - 1:
                entry = next(bad, None)
                if entry is not None:
                    out.write(entry[1] + "\n")
        for entry in bad:
            out.write(entry[1] + "\n")
    return mixed, valid_ids


@pytest.fixture(scope="module")
def model(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("model")
    subprocess.run([str(BIN), "generate", "--out", str(root / "h.csv"), "--cards", "300", "--days", "5", "--seed", "9"],
                   check=True, capture_output=True)
    subprocess.run([str(BIN), "train", "--data", str(root / "h.csv"), "--model-out", str(root / "m")],
                   check=True, capture_output=True)
    return root / "m"


def test_run_sends_every_malformed_row_to_dead_letters_and_scores_the_rest(model, tmp_path) -> None:
    data, valid_ids = _jsonl(tmp_path)
    store = tmp_path / "alerts.db"
    done = subprocess.run(
        [str(BIN), "run", "--source", "file", "--data", str(data), "--model", str(model), "--store", str(store),
         "--no-live-view", "--batch-size", "100"],
        check=True, capture_output=True, text=True,
    )
    summary = " ".join(done.stderr.split("finished:")[-1].split())  # the final summary, not the periodic status lines
    scored = int(re.search(r"([\d,]+) scored", summary).group(1).replace(",", ""))
    letters = int(re.search(r"([\d,]+) dead letters", summary).group(1).replace(",", ""))
    assert scored == len(valid_ids)
    assert letters == len(MALFORMED)
    with sqlite3.connect(store) as db:
        rows = db.execute("SELECT position, field, reason, raw FROM dead_letters ORDER BY CAST(position AS INTEGER)").fetchall()
    assert len(rows) == len(MALFORMED)
    for (what, line, field), (position, got_field, reason, raw) in zip(MALFORMED, rows):
        assert got_field == field, what
        assert reason, what
        assert raw == line[: len(raw)] and len(raw) <= 65536, what  # the original text, possibly truncated
        assert data.read_text().splitlines()[int(position) - 1] == line, what


def test_score_writes_a_row_for_every_valid_transaction_only(model, tmp_path) -> None:
    data, valid_ids = _jsonl(tmp_path)
    out = tmp_path / "scores.csv"
    subprocess.run(
        [str(BIN), "score", "--data", str(data), "--model", str(model), "--out", str(out)],
        check=True, capture_output=True,
    )
    with open(out, newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert {r["transaction_id"] for r in rows} == valid_ids and len(rows) == len(valid_ids)
    assert all(0.0 <= float(r["score"]) <= 1.0 for r in rows)
    letters = [json.loads(line) for line in (tmp_path / "mixed.jsonl.dead_letters.jsonl").read_text().splitlines()]
    assert [letter["field"] for letter in letters] == [field for _, _, field in MALFORMED]
